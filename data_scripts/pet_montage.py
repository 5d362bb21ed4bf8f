"""A picture of the PET training draws: for a few subjects of make_pet_data.py's output, the
noise-free truth, the full-dose scan and the 1/10-dose scan (axial mid slice, each subject on its
own scanner grid), titled with the drawn voxel size, system resolution and lesion count.

Usage: python data_scripts/pet_montage.py --data data/pet --split train --subjects 6 \
           --out bundles/pet_lowdose_cgan/docs/phantom_draws.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from volgan.io import read_nifti  # noqa: E402

COLUMNS = (("truth", "noise-free truth"), ("full", "full dose"), ("dose-10", "1/10 dose"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data/pet"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    folder = args.data / args.split
    metas = sorted(folder.glob("sub-*.json"))[: args.subjects]
    if not metas:
        sys.exit(f"{folder}: no sub-*.json (run data_scripts/make_pet_data.py first)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(metas), len(COLUMNS), figsize=(2.4 * len(COLUMNS), 2.4 * len(metas)), squeeze=False)
    for row, meta_path in zip(axes, metas):
        meta = json.loads(meta_path.read_text())
        stem = meta_path.with_suffix("")
        images = {key: read_nifti(f"{stem}_{key}.nii.gz").array for key, _ in COLUMNS}
        vmax = float(np.percentile(images["truth"], 99.9)) or 1.0
        spacing = "x".join(f"{s:.1f}" for s in meta["spacing_mm"])
        for ax, (key, label) in zip(row, COLUMNS):
            image = images[key]
            ax.imshow(image[:, :, image.shape[2] // 2].T, cmap="gray_r", origin="lower", vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label, fontsize=8)
        row[0].set_ylabel(f"{stem.name}\n{spacing} mm\nFWHM {np.mean(meta['fwhm_mm']):.1f} mm, "
                          f"{len(meta['lesions'])} lesions", fontsize=7)
    fig.suptitle(f"PET phantom draws ({args.split}): each on its own scanner grid", fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f"{args.out.name}.partial-{os.getpid()}.png")
    fig.savefig(tmp, dpi=70)
    plt.close(fig)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
