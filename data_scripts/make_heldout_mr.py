"""Build the held-out MR test sets: anatomy never used for training, validation or any choice.

Source: Colin27 (``ch2.nii.gz``, a single subject's T1, whole head, 1 mm; ``ch2bet.nii.gz`` for the
brain mask) from Debian's ``mricron-data`` (``apt-get install mricron-data``). The training
anatomy (nilearn's MNI152 2009 maps, pydeface's mean head) shares no scan with it.

For each voxel size (1 mm as acquired, 1.5 mm resampled with an anti-aliasing filter), writes to
``OUT/colin27_<size>mm/``: ``clean.nii.gz`` (scaled to a maximum of 1), ``brain_mask.nii.gz``,
``head_mask.nii.gz`` and ``rician_<L>pct.nii.gz`` (Rician noise at L % of the clean maximum,
seeded), and ``set.json`` listing them with their provenance.

Usage: python data_scripts/make_heldout_mr.py --out data/heldout_mr [--levels 1 3 5 9 15] [--seed 2718]
Idempotent: a set whose ``set.json`` exists is kept.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from volgan.degrade import add_rician_noise
from volgan.io import Volume, read_nifti, write_nifti

COLIN = Path("/usr/share/mricron/templates")
LEVELS = (1, 3, 5, 9, 15)
SIZES = (1.0, 1.5)


def resampled(array: np.ndarray, factor: float, order: int = 1) -> np.ndarray:
    """``array`` on a grid ``factor`` times coarser (anti-aliased by a Gaussian when ``order`` > 0)."""
    if factor == 1.0:
        return array
    if order > 0:
        array = ndimage.gaussian_filter(array, sigma=0.4 * factor)
    return ndimage.zoom(array, 1.0 / factor, order=order, grid_mode=True, mode="grid-constant")


def build_set(out: Path, size: float, levels, seed: int) -> None:
    if (out / "set.json").exists():
        print(f"{out}: exists; kept")
        return
    head = read_nifti(COLIN / "ch2.nii.gz")
    brain = read_nifti(COLIN / "ch2bet.nii.gz").array > 0
    clean = head.array.astype(np.float32)
    head_mask = ndimage.binary_fill_holes(ndimage.binary_closing(clean > 0.1 * clean.max(), iterations=2))
    box = np.argwhere(head_mask)
    crop = tuple(slice(max(a - 4, 0), b + 5) for a, b in zip(box.min(0), box.max(0)))
    clean, brain, head_mask = clean[crop], brain[crop], head_mask[crop]
    clean = np.clip(resampled(clean, size), 0, None)
    brain = resampled(brain.astype(np.float32), size, 1) > 0.5
    head_mask = resampled(head_mask.astype(np.float32), size, 1) > 0.5
    clean /= float(clean.max())
    affine = head.affine.copy()
    # zoom's grid mode puts the first coarse voxel's centre (size - 1) / 2 fine voxels in
    first = np.array([s.start for s in crop]) + (size - 1) / 2
    affine[:3, 3] = head.affine[:3, :3] @ first + head.affine[:3, 3]
    affine[:3, :3] = head.affine[:3, :3] * size
    out.mkdir(parents=True, exist_ok=True)
    write_nifti(Volume(clean.astype(np.float32), affine), out / "clean.nii.gz")
    write_nifti(Volume(brain.astype(np.uint8), affine), out / "brain_mask.nii.gz")
    write_nifti(Volume(head_mask.astype(np.uint8), affine), out / "head_mask.nii.gz")
    noisy = {}
    for i, level in enumerate(levels):
        name = f"rician_{level:g}pct.nii.gz"
        write_nifti(Volume(add_rician_noise(clean, level, seed=seed + i, peak=1.0), affine), out / name)
        noisy[f"{level:g}"] = name
    meta = {
        "source": "Colin27 ch2.nii.gz / ch2bet.nii.gz, Debian mricron-data (single-subject T1, 1 mm)",
        "voxel_size_mm": size,
        "shape": list(clean.shape),
        "noise": f"Rician, sigma = level % of the clean maximum (1.0), seeds {seed}..{seed + len(levels) - 1}",
        "clean": "clean.nii.gz", "brain_mask": "brain_mask.nii.gz", "head_mask": "head_mask.nii.gz",
        "noisy": noisy,
        "use": "held-out test only: never train, validate or choose anything on it",
    }
    (out / "set.json").write_text(json.dumps(meta, indent=2))
    print(f"{out}: {clean.shape} at {size} mm, levels {list(noisy)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/heldout_mr")
    parser.add_argument("--levels", type=float, nargs="+", default=LEVELS)
    parser.add_argument("--sizes", type=float, nargs="+", default=SIZES)
    parser.add_argument("--seed", type=int, default=2718)
    args = parser.parse_args(argv)
    if not (COLIN / "ch2.nii.gz").is_file():
        raise SystemExit(f"{COLIN / 'ch2.nii.gz'} not found: apt-get install mricron-data")
    for size in args.sizes:
        build_set(Path(args.out) / f"colin27_{size:g}mm", size, args.levels, args.seed)


if __name__ == "__main__":
    main()
