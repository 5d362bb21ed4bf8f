"""The demo: denoise a noisy held-out head with the RED-WGAN bundle through the MONAI bundle CLI,
then write a metrics table and a PNG montage (input / output / reference).

Usage: python data_scripts/run_demo.py --data data/mr --out demo_output
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from volgan.io import read_nifti  # noqa: E402
from volgan.metrics import nrmse, psnr, ssim  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "mri_denoise_redwgan"


def montage(images: dict[str, np.ndarray], path: Path) -> None:
    """Rows: axial, coronal, sagittal mid slices; columns: the images, on one grey scale."""
    vmax = float(np.percentile(list(images.values())[-1], 99.5))  # the reference, last column
    fig, axes = plt.subplots(3, len(images), figsize=(3.2 * len(images), 9.6))
    for col, (name, vol) in enumerate(images.items()):
        cx, cy, cz = (s // 2 for s in vol.shape)
        for row, sl in enumerate((vol[:, :, cz], vol[:, cy, :], vol[cx, :, :])):
            ax = axes[row, col]
            ax.imshow(sl.T, cmap="gray", origin="lower", vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="data/mr")
    parser.add_argument("--out", default="demo_output")
    args = parser.parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    inputs = data / "demo" / "input"
    denoised_dir = out / "denoised"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLE / "configs" / "inference.yaml"),
           "--bundle_root", str(BUNDLE), "--dataset_dir", str(inputs), "--output_dir", str(denoised_dir)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)

    splits = json.loads((data / "splits.json").read_text())
    clean = read_nifti(splits["test_clean"]).array
    mask = read_nifti(splits["test_mask"]).array > 0.5
    peak = float(clean.max())
    lines = ["| volume | PSNR (dB) | SSIM | NRMSE |", "|---|---|---|---|"]
    for noisy_path in sorted(inputs.glob("*.nii.gz")):
        noisy = read_nifti(noisy_path).array
        denoised = read_nifti(denoised_dir / noisy_path.name).array
        for name, vol in (("noisy input", noisy), ("RED-WGAN bundle", denoised)):
            lines.append(
                f"| {noisy_path.name}: {name} | {psnr(vol, clean, data_range=peak, mask=mask):.2f} | "
                f"{ssim(vol, clean, data_range=peak, mask=mask):.4f} | {nrmse(vol, clean, mask=mask):.4f} |"
            )
        montage({"input (noisy)": noisy, "output (denoised)": denoised, "reference (clean)": clean},
                out / f"{noisy_path.name.split('.')[0]}_montage.png")
    table = "\n".join(["Metrics in the brain mask, data_range = clean maximum:", "", *lines])
    (out / "metrics.md").write_text(table + "\n")
    print(table)
    print(f"demo outputs in {out}/")


if __name__ == "__main__":
    main()
