"""Held-out denoising quality of the RED-WGAN bundle against classical baselines.

Runs on held-out sets built by data_scripts/make_heldout_mr.py (Colin27, a single subject never used
for training, validation or any choice; 1 mm and 1.5 mm). For every Rician level, all methods get
the same noisy input (a fixed crop around the centre of the brain mask, so that BM4D's run time
stays reasonable on two cores) and are scored by PSNR and 3D SSIM inside the brain mask, with
data_range = maximum of the clean volume (1):

- noisy input as is;
- best Gaussian filter (oracle width chosen with the clean reference: an upper bound for Gaussian);
- dipy non-local means, rician=True, known sigma;
- BM4D, known sigma;
- the bundle (its inference.yaml predictor, fp32, on the crop as a volume with its voxel size), with
  ``--bundle-args key=value`` overrides of its inference.yaml (e.g. ``weights=gan``, ``flips=8``).

Also prints the sharpness of each output: mean gradient magnitude in the brain relative to the
clean volume's (1.0 = as sharp as the truth; below 1 = smoother).

Usage: python benchmarks/denoising_quality.py --set data/heldout_mr/colin27_1mm [--set ...] \
           [--crop 96 96 64] [--methods noisy gaussian nlm bm4d bundle] [--json out.json] [--previous earlier.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from volgan.bundle import bundle_predictor
from volgan.io import Volume, read_nifti
from volgan.metrics import best_gaussian, bm4d_denoise, nlm_rician, psnr, relative_sharpness, ssim

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
    parser.add_argument("--set", dest="sets", action="append", required=True,
                        help="held-out set folder with set.json (repeatable)")
    parser.add_argument("--bundle", default="bundles/mri_denoise_redwgan")
    parser.add_argument("--bundle-args", nargs="*", default=[], help="inference.yaml overrides, key=value")
    parser.add_argument("--crop", type=int, nargs=3, default=(96, 96, 64))
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--levels", type=float, nargs="+", default=None)
    parser.add_argument("--json", default=None, help="write the results here as JSON")
    parser.add_argument("--previous", default=None, help="JSON of an earlier run (e.g. the slow baselines) to merge")
    args = parser.parse_args(argv)
    predictor = None
    if "bundle" in args.methods:
        overrides = dict(kv.split("=", 1) for kv in args.bundle_args)
        predictor = bundle_predictor(args.bundle, **overrides)
    rows = []
    for folder in map(Path, args.sets):
        meta = json.loads((folder / "set.json").read_text())
        clean_volume = read_nifti(folder / meta["clean"])
        clean_full = clean_volume.array
        mask_full = read_nifti(folder / meta["brain_mask"]).array > 0.5
        peak = float(clean_full.max())
        region = centre_crop(mask_full, tuple(args.crop))
        clean, mask = clean_full[region], mask_full[region]
        crop_affine = clean_volume.affine.copy()
        crop_affine[:3, 3] += crop_affine[:3, :3] @ np.array([s.start for s in region])
        levels = args.levels or [float(k) for k in meta["noisy"]]
        for level in levels:
            noisy = read_nifti(folder / meta["noisy"][f"{level:g}"]).array[region]
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
                    out = predictor.predict(Volume(noisy, crop_affine)).array
                    note = " ".join(args.bundle_args)
                outputs[method] = (out, time.perf_counter() - t0, note)
            for method, (out, seconds, note) in outputs.items():
                row = {
                    "set": folder.name,
                    "level_percent": level,
                    "method": method,
                    "psnr": round(psnr(out, clean, data_range=peak, mask=mask), 2),
                    "ssim": round(ssim(out, clean, data_range=peak, mask=mask), 4),
                    "sharpness": round(relative_sharpness(out, clean, mask=mask), 3),
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
        Path(args.json).write_text(json.dumps({"crop": list(args.crop), "rows": rows}, indent=2))


def print_table(rows: list[dict], methods) -> None:
    header = "| set | Rician level | " + " | ".join(f"{m} PSNR / SSIM / sharpness" for m in methods) + " |"
    print(header)
    print("|" + "---|" * (len(methods) + 2))
    for name in dict.fromkeys(r.get("set", "") for r in rows):
        for level in sorted({r["level_percent"] for r in rows if r.get("set", "") == name}):
            cells = []
            for m in methods:
                r = next((r for r in rows if r.get("set", "") == name and r["level_percent"] == level
                          and r["method"] == m), None)
                cells.append("-" if r is None else f"{r['psnr']:.2f} / {r['ssim']:.4f} / {r.get('sharpness', float('nan')):.2f}")
            print(f"| {name} | {level:g}% | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
