"""Build super-resolution training, validation and held-out test data from offline packages.

Splits (no anatomy is shared between train/val and test):

- train: nilearn's MNI152 2009 T1 (skull-stripped, 1 mm), cropped to a multiple of 4 slices;
- val:   a synthetic T2-like contrast made from the MNI152 tissue maps (monitoring only);
- test:  pydeface's mean head (never used for training), with its brain mask (registered MNI152
         brain, as in data/mr) and a head mask.

For every split, two degradations of the clean 1 mm volume:

- ``kspace``: central half of 3D k-space kept along axes 0 and 1 (4x fewer samples), magnitude,
  same 1 mm grid;
- ``thick4``: 4 consecutive slices along axis 2 averaged into one 4 mm slice (affine places it at the
  mean of its thin slice centres); ``thick4_cubic``: the same resampled back onto the 1 mm grid by
  cubic B-spline interpolation (the network input; train/val only).

Training pairs are ``(kspace, clean)`` and ``(thick4_cubic, clean)``.

Usage: python data_scripts/make_sr_data.py --out data/sr [--mr data/mr]
Idempotent: existing outputs are kept.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_mr_data import brain_mask_of_mni, head_brain_mask, synthetic_t2  # noqa: E402
from sources import mni152, pydeface_mean_head  # noqa: E402

from volgan.data.target_grid import resample_to_target  # noqa: E402
from volgan.degrade import thick_slices, truncate_kspace_volume  # noqa: E402
from volgan.io import Volume, read_nifti, write_nifti  # noqa: E402

SLICE_FACTOR = 4
SLICE_AXIS = 2
KSPACE_FRACTION = 0.5
KSPACE_AXES = (0, 1)


def crop_to_multiple(volume: Volume, n: int, axis: int) -> Volume:
    """Drop trailing slices along ``axis`` so that its length is a multiple of ``n`` (same origin)."""
    keep = volume.shape[axis] // n * n
    index = [slice(None)] * 3
    index[axis] = slice(0, keep)
    return volume.with_array(np.ascontiguousarray(volume.array[tuple(index)]), affine=volume.affine.copy())


def head_mask(head: np.ndarray) -> np.ndarray:
    """Foreground of a whole-head image: above 10 % of the 99th percentile, largest component, holes filled."""
    fg = head > 0.1 * np.percentile(head, 99)
    labels, n = ndimage.label(fg)
    if n > 1:
        sizes = ndimage.sum(fg, labels, range(1, n + 1))
        fg = labels == (1 + int(np.argmax(sizes)))
    fg = ndimage.binary_closing(fg, iterations=2)
    for axis in range(3):  # fill holes slice by slice as well (sinuses, ear canals open to the outside)
        fg = np.stack([ndimage.binary_fill_holes(s) for s in np.moveaxis(fg, axis, 0)], axis=0)
        fg = np.moveaxis(fg, 0, axis)
    return ndimage.binary_fill_holes(fg)


def write_degraded(clean: Volume, folder: Path, name: str, with_cubic: bool) -> dict[str, str]:
    paths = {"clean": folder / "clean" / name, "kspace": folder / "kspace" / name, "thick4": folder / "thick4" / name}
    if with_cubic:
        paths["thick4_cubic"] = folder / "thick4_cubic" / name
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    if not paths["clean"].exists():
        write_nifti(clean, paths["clean"])
    if not paths["kspace"].exists():
        write_nifti(truncate_kspace_volume(clean, KSPACE_FRACTION, KSPACE_AXES), paths["kspace"])
    thick = thick_slices(clean, SLICE_FACTOR, SLICE_AXIS)
    if not paths["thick4"].exists():
        write_nifti(thick, paths["thick4"])
    if with_cubic and not paths["thick4_cubic"].exists():
        cubic = resample_to_target(thick, 1.0, "cubic")
        assert cubic.shape == clean.shape and np.allclose(cubic.affine, clean.affine, atol=1e-5)
        write_nifti(cubic, paths["thick4_cubic"])
    return {k: str(v) for k, v in paths.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/sr")
    parser.add_argument("--mr", default="data/mr", help="reuse its test brain mask if present (else register)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t1_full = read_nifti(mni152("t1"))
    mni_mask = brain_mask_of_mni(t1_full.array)
    t1 = crop_to_multiple(t1_full, SLICE_FACTOR, SLICE_AXIS)
    train = write_degraded(t1, out / "train", "mni152_t1.nii.gz", with_cubic=True)

    gm = read_nifti(mni152("gm")).array
    wm = read_nifti(mni152("wm")).array
    t2 = crop_to_multiple(t1_full.with_array(synthetic_t2(gm, wm, mni_mask)), SLICE_FACTOR, SLICE_AXIS)
    val = write_degraded(t2, out / "val", "mni152_synthetic_t2.nii.gz", with_cubic=True)

    head = crop_to_multiple(read_nifti(pydeface_mean_head()), SLICE_FACTOR, SLICE_AXIS)
    test = write_degraded(head, out / "test", "mean_head.nii.gz", with_cubic=False)
    brain_path = out / "test" / "brain_mask.nii.gz"
    if not brain_path.exists():
        existing = Path(args.mr) / "test" / "brain_mask.nii.gz"
        if existing.is_file() and read_nifti(existing).shape == head.shape:
            shutil.copyfile(existing, brain_path)
        else:
            mask = head_brain_mask(head, t1_full, mni_mask)
            write_nifti(head.with_array(mask.astype(np.float32)), brain_path, dtype=np.uint8)
    head_path = out / "test" / "head_mask.nii.gz"
    if not head_path.exists():
        write_nifti(head.with_array(head_mask(head.array).astype(np.float32)), head_path, dtype=np.uint8)

    for mode in ("kspace", "thick4"):
        demo = out / "demo" / mode / "mean_head.nii.gz"
        demo.parent.mkdir(parents=True, exist_ok=True)
        if not demo.exists():
            shutil.copyfile(test[mode], demo)

    splits = {
        "train": train, "val": val, "test": test,
        "test_brain_mask": str(brain_path), "test_head_mask": str(head_path),
        "degradations": {"slice_factor": SLICE_FACTOR, "slice_axis": SLICE_AXIS,
                         "kspace_fraction": KSPACE_FRACTION, "kspace_axes": list(KSPACE_AXES)},
        "sources": {"train": str(mni152("t1")), "test": str(pydeface_mean_head())},
    }
    (out / "splits.json").write_text(json.dumps(splits, indent=2))
    print(f"SR data ready in {out}")


if __name__ == "__main__":
    main()
