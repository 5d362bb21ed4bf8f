"""Build MR denoising training, validation and held-out test data from offline packages.

Splits (no volume is shared between them):

- train: nilearn's MNI152 2009 T1 template (skull-stripped, 1 mm), as is and Gaussian-smoothed;
- val:   a synthetic T2-like contrast made from the MNI152 tissue maps (used to pick checkpoints);
- test:  pydeface's mean head (a different population average, whole head), with a brain mask
         made by registering the MNI152 brain onto it, and Rician-noisy copies at 1-15 %,
         listed as (noisy source, clean target, mask) pairs in ``test_pairs.csv``.

Usage: python data_scripts/make_mr_data.py --out data/mr [--levels 1 3 5 ...] [--seed 0]
Idempotent: existing outputs are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sources import mni152, pydeface_mean_head  # noqa: E402

from volgan.data.registration import register, resample_to  # noqa: E402
from volgan.data.sitk_image import array_to_sitk  # noqa: E402
from volgan.degrade import add_rician_noise  # noqa: E402
from volgan.io import Volume, read_nifti, write_nifti  # noqa: E402

LEVELS = (1, 3, 5, 7, 9, 11, 13, 15)
DEMO_LEVEL = 7


def brain_mask_of_mni(t1: np.ndarray) -> np.ndarray:
    mask = ndimage.binary_fill_holes(t1 > 0)
    return ndimage.binary_opening(mask, iterations=1)


def synthetic_t2(gm: np.ndarray, wm: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """T2-like contrast: CSF bright, grey matter mid, white matter dark (arbitrary units 0-255)."""
    gm, wm = gm / 255.0, wm / 255.0
    csf = np.clip(mask.astype(np.float32) - gm - wm, 0, 1)
    img = 250 * csf + 150 * gm + 90 * wm
    return ndimage.gaussian_filter(img * mask, 0.5).astype(np.float32)


def head_brain_mask(head: Volume, mni_t1: Volume, mni_mask: np.ndarray) -> np.ndarray:
    """Brain mask on the head by rigid registration of the MNI152 brain (Mattes MI; an affine
    transform would stretch the skull-stripped brain over the skull)."""
    fixed = array_to_sitk(head.array, head.affine)
    moving = array_to_sitk(mni_t1.array, mni_t1.affine)
    result = register(
        fixed, moving, kind="rigid", shrink_factors=(8, 4, 2), smoothing_sigmas=(4.0, 2.0, 1.0),
        iterations=150, sampling_fraction=0.05,
    )
    mask_img = array_to_sitk(mni_mask.astype(np.uint8), mni_t1.affine)
    warped = resample_to(mask_img, fixed, result.transform, nearest=True)
    mask = np.transpose(sitk.GetArrayFromImage(warped), (2, 1, 0)) > 0
    print(f"registered MNI152 brain to the mean head: Mattes MI {result.metric:.3f}, mask {mask.sum()} voxels")
    return mask


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/mr")
    parser.add_argument("--levels", type=float, nargs="+", default=LEVELS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    for sub in ("train", "val", "test/clean", "demo/input"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    t1 = read_nifti(mni152("t1"))
    mni_mask = brain_mask_of_mni(t1.array)
    train_path = out / "train" / "mni152_t1.nii.gz"
    if not train_path.exists():
        write_nifti(t1, train_path)
    # the same anatomy at a lower resolution, so the model also sees smooth, averaged-looking images
    smooth_path = out / "train" / "mni152_t1_smooth.nii.gz"
    if not smooth_path.exists():
        write_nifti(t1.with_array(ndimage.gaussian_filter(t1.array, 1.0)), smooth_path)

    val_path = out / "val" / "mni152_synthetic_t2.nii.gz"
    if not val_path.exists():
        gm = read_nifti(mni152("gm")).array
        wm = read_nifti(mni152("wm")).array
        write_nifti(t1.with_array(synthetic_t2(gm, wm, mni_mask)), val_path)

    head = read_nifti(pydeface_mean_head())
    clean_path = out / "test" / "clean" / "mean_head.nii.gz"
    if not clean_path.exists():
        write_nifti(head, clean_path)
    mask_path = out / "test" / "brain_mask.nii.gz"
    if not mask_path.exists():
        mask = head_brain_mask(head, t1, mni_mask)
        write_nifti(head.with_array(mask.astype(np.float32)), mask_path, dtype=np.uint8)

    for i, level in enumerate(args.levels):
        noisy_path = out / "test" / f"rician_{level:g}pct" / "mean_head.nii.gz"
        if noisy_path.exists():
            continue
        noisy_path.parent.mkdir(parents=True, exist_ok=True)
        write_nifti(head.with_array(add_rician_noise(head.array, level, seed=args.seed + 1000 + i)), noisy_path)

    demo_path = out / "demo" / "input" / f"mean_head_rician{DEMO_LEVEL:02d}.nii.gz"
    if not demo_path.exists():
        write_nifti(head.with_array(add_rician_noise(head.array, DEMO_LEVEL, seed=args.seed + 7)), demo_path)

    # the noisy/clean test pairs as a manifest (paths relative to it) for configs/evaluate_pairs.yaml
    rows = [f"mean_head_rician{level:g}pct,test/rician_{level:g}pct/mean_head.nii.gz,test/clean/mean_head.nii.gz,"
            "test/brain_mask.nii.gz\n" for level in args.levels]
    (out / "test_pairs.csv").write_text("subject,source,target,mask\n" + "".join(rows))

    splits = {
        "train": [str(train_path), str(smooth_path)],
        "val": [str(val_path)],
        "test_clean": str(clean_path),
        "test_mask": str(mask_path),
        "test_levels": [float(v) for v in args.levels],
        "sources": {"train": str(mni152("t1")), "test": str(pydeface_mean_head())},
    }
    (out / "splits.json").write_text(json.dumps(splits, indent=2))
    print(f"MR data ready in {out}")


if __name__ == "__main__":
    main()
