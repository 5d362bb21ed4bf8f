"""Held-out denoising quality of the RED-WGAN bundle against classical baselines.

For every Rician level in the test split made by data_scripts/make_mr_data.py, all methods get the
same noisy input (a fixed crop around the centre of the brain mask, so that BM4D's run time stays
reasonable on two cores) and are scored by PSNR and 3D SSIM inside the brain mask, with
data_range = maximum of the clean volume:

- noisy input as is;
- best Gaussian filter (oracle width chosen with the clean reference);
- dipy non-local means, rician=True, known sigma;
- BM4D, known sigma;
- the bundle (its inference.yaml predictor, fp32).

Usage: python benchmarks/denoising_quality.py --data data/mr --bundle bundles/mri_denoise_redwgan \
           [--crop 96 96 64] [--methods noisy gaussian nlm bm4d bundle] [--json out.json] [--previous earlier.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from volgan.cli import bundle_predictor
from volgan.io import read_nifti
from volgan.metrics import best_gaussian, bm4d_denoise, nlm_rician, psnr, ssim

METHODS = ("noisy", "gaussian", "nlm", "bm4d", "bundle")


def centre_crop(mask: np.ndarray, size: tuple[int, int, int]) -> tuple[slice, ...]:
    idx = np.argwhere(mask)
    centre = (idx.min(0) + idx.max(0)) // 2
    out = []
    for c, s, n in zip(centre, size, mask.shape):
        start = int(np.clip(c - s // 2, 0, max(n - s, 0)))
        out.append(slice(start, start + min(s, n)))
    return tuple(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/mr")
    parser.add_argument("--bundle", default="bundles/mri_denoise_redwgan")
    parser.add_argument("--crop", type=int, nargs=3, default=(96, 96, 64))
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--levels", type=float, nargs="+", default=None)
    parser.add_argument("--json", default=None, help="write the results here as JSON")
    parser.add_argument("--previous", default=None, help="JSON of an earlier run (e.g. the slow baselines) to merge")
    args = parser.parse_args(argv)
    data = Path(args.data)
    splits = json.loads((data / "splits.json").read_text())
    clean_full = read_nifti(splits["test_clean"]).array
    mask_full = read_nifti(splits["test_mask"], check=True).array > 0.5
    peak = float(clean_full.max())
    region = centre_crop(mask_full, tuple(args.crop))
    clean, mask = clean_full[region], mask_full[region]
    predictor = bundle_predictor(args.bundle) if "bundle" in args.methods else None
    levels = args.levels or splits["test_levels"]
    rows = []
    for level in levels:
        noisy = read_nifti(data / "test" / f"rician_{level:g}pct" / "mean_head.nii.gz").array[region]
        sigma = level / 100.0 * peak
        outputs: dict[str, tuple[np.ndarray, float, str]] = {}
        for method in args.methods:
            t0 = time.perf_counter()
            note = ""
            if method == "noisy":
                out = noisy
            elif method == "gaussian":
                out, width = best_gaussian(noisy, clean, data_range=peak, mask=mask)
                note = f"sigma={width:g} vox"
            elif method == "nlm":
                out = nlm_rician(noisy, sigma)
            elif method == "bm4d":
                out = bm4d_denoise(noisy, sigma)
            else:
                out = predictor.predict_array(noisy)
            outputs[method] = (out, time.perf_counter() - t0, note)
        for method, (out, seconds, note) in outputs.items():
            row = {
                "level_percent": level,
                "method": method,
                "psnr": round(psnr(out, clean, data_range=peak, mask=mask), 2),
                "ssim": round(ssim(out, clean, data_range=peak, mask=mask), 4),
                "seconds": round(seconds, 1),
                "note": note,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    methods = list(args.methods)
    if args.previous:
        earlier = json.loads(Path(args.previous).read_text())["rows"]
        rows = [r for r in earlier if r["method"] not in methods] + rows
        methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    print_table(rows, methods)
    if args.json:
        Path(args.json).write_text(json.dumps({"crop": [[s.start, s.stop] for s in region], "rows": rows}, indent=2))


def print_table(rows: list[dict], methods) -> None:
    levels = sorted({r["level_percent"] for r in rows})
    header = "| Rician level | " + " | ".join(f"{m} PSNR / SSIM" for m in methods) + " |"
    print(header)
    print("|" + "---|" * (len(methods) + 1))
    for level in levels:
        cells = []
        for m in methods:
            r = next(r for r in rows if r["level_percent"] == level and r["method"] == m)
            cells.append(f"{r['psnr']:.2f} / {r['ssim']:.4f}")
        print(f"| {level:g}% | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
