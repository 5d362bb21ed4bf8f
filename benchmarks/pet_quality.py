"""Held-out quality of the low-dose PET cGAN bundle against the low-dose scan and a Gaussian filter.

Test subject: data/pet/test (made by data_scripts/make_pet_data.py; its anatomy deformation,
uptake pattern and lesion layout come from a seed never used for training or validation).
For each dose (1/4, 1/10), scored against the full-dose reconstruction of the same subject:

- PSNR and 3D SSIM inside the brain mask (data range: the full-dose maximum in the brain, SUV);
- lesion contrast recovery: each lesion's contrast (lesion mean / mean of a 5 mm shell around it)
  divided by its contrast in the full-dose image; mean, min and max over the lesions;
- PSNR against the noise-free reconstruction (the full-dose scan with 1e4 times the counts): the
  full-dose scan is itself noisy, so a perfect denoiser scores only the "noise-free" row's PSNR
  against it (the ceiling of the first column).

Methods: the low-dose scan as is; the best Gaussian post-filter (an oracle: the FWHM that
maximises the brain PSNR against the full dose, chosen on this test subject, so an upper bound
for Gaussian filtering); the bundle's predictor (configs/inference.yaml, fp32) and, with
``--weights NAME=PATH``, other generator checkpoints.

Usage: python benchmarks/pet_quality.py --data data/pet --bundle bundles/pet_lowdose_cgan [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from volgan.bundle import bundle_predictor
from volgan.io import read_nifti
from volgan.metrics import contrast_recovery, psnr, ssim

DOSES = {"1/4": "dose-4", "1/10": "dose-10"}
FWHMS_MM = (2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0)


def gaussian(image: np.ndarray, fwhm_mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    return ndimage.gaussian_filter(image, [fwhm_mm / 2.3548 / s for s in spacing])


def scores(image: np.ndarray, full: np.ndarray, brain: np.ndarray, lesions: np.ndarray, spacing,
           noise_free: np.ndarray | None = None) -> dict:
    peak = float(full[brain].max())
    recovery = list(contrast_recovery(image, full, lesions, spacing).values())
    extra = {} if noise_free is None else {"psnr_noise_free": round(psnr(image, noise_free, data_range=peak, mask=brain), 2)}
    return {
        **extra,
        "psnr": round(psnr(image, full, data_range=peak, mask=brain), 2),
        "ssim": round(ssim(image, full, data_range=peak, mask=brain), 4),
        "cr_mean": round(float(np.mean(recovery)), 3),
        "cr_min": round(float(np.min(recovery)), 3),
        "cr_max": round(float(np.max(recovery)), 3),
    }


def best_gaussian(low: np.ndarray, full: np.ndarray, brain: np.ndarray, spacing) -> tuple[np.ndarray, float]:
    peak = float(full[brain].max())
    results = [(psnr(f := gaussian(low, w, spacing), full, data_range=peak, mask=brain), w, f) for w in FWHMS_MM]
    _, width, filtered = max(results, key=lambda r: r[0])
    return filtered, width


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/pet"))
    parser.add_argument("--bundle", type=Path, default=Path("bundles/pet_lowdose_cgan"))
    parser.add_argument("--weights", nargs="*", default=[], help="extra checkpoints as NAME=PATH")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    test = args.data / "test"
    subject = sorted(test.glob("*_full.nii.gz"))[0].name.replace("_full.nii.gz", "")
    full = read_nifti(test / f"{subject}_full.nii.gz")
    brain = read_nifti(test / f"{subject}_brain.nii.gz").array > 0
    lesions = read_nifti(test / f"{subject}_lesions.nii.gz").array.astype(np.int16)
    spacing = full.spacing
    noise_free = read_nifti(test / f"{subject}_noisefree.nii.gz").array
    cpu = "$torch.device('cpu')"
    predictors = {"bundle": bundle_predictor(args.bundle, device=cpu)}
    for spec in args.weights:
        name, path = spec.split("=", 1)
        predictors[name] = bundle_predictor(args.bundle, device=cpu, ckpt_path=path)
    rows = [{"dose": "-", "method": "noise-free reconstruction (ceiling)",
             **scores(noise_free, full.array, brain, lesions, spacing, noise_free)}]
    for dose, key in DOSES.items():
        low = read_nifti(test / f"{subject}_{key}.nii.gz")
        rows.append({"dose": dose, "method": "low dose", **scores(low.array, full.array, brain, lesions, spacing, noise_free)})
        filtered, width = best_gaussian(low.array, full.array, brain, spacing)
        rows.append({"dose": dose, "method": f"best Gaussian ({width:g} mm)", **scores(filtered, full.array, brain, lesions, spacing, noise_free)})
        for name, predictor in predictors.items():
            start = time.perf_counter()
            out = predictor.predict(low).array
            seconds = time.perf_counter() - start
            rows.append({"dose": dose, "method": name, **scores(out, full.array, brain, lesions, spacing, noise_free),
                         "seconds": round(seconds, 1)})
    print(f"held-out subject {subject}, {full.shape} voxels of {spacing} mm; scores against the full-dose scan")
    print("| Dose | Method | PSNR (dB) | SSIM | Lesion contrast recovery mean (min-max) | PSNR vs noise-free (dB) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dose']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
              f"{r['cr_mean']:.3f} ({r['cr_min']:.3f}-{r['cr_max']:.3f}) | {r['psnr_noise_free']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
