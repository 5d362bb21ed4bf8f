"""A real-anatomy cross-contrast pair with known geometry, for tests, benchmarks and a
`volgan pairs check` demo.

Target: nilearn's MNI152 T1 (at ``--target-mm``). Sources: a PET-like image simulated from the
MNI152 grey/white matter maps (6 mm FWHM, noise), on a 2x2x3 mm grid with a flipped direction
matrix and another origin: ``source`` moved by a known rigid transform (8, -6, 7 degrees;
10, -12, 7 mm), ``source_world`` not moved, ``source_far`` moved 600 mm away (no overlap).
Writes the NIfTI files and ``pairs.csv`` (subjects named after the sources) into ``--out``.

Usage: python data_scripts/make_pair_data.py --out data/pairs [--target-mm 2] [--source-spacing 2 2 3]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sources import mni152  # noqa: E402

from volgan.data.simulate import image_centre, move_onto_grid, pet_like, rigid_transform  # noqa: E402
from volgan.data.sitk_image import sitk_to_volume, volume_to_sitk  # noqa: E402
from volgan.io import read_nifti, write_nifti  # noqa: E402

FLIP_X = np.diag([-1.0, 1.0, 1.0])


@dataclass
class BrainCase:
    folder: Path
    manifest: Path  # pairs.csv listing the three sources against the target
    target: Path
    source: Path  # moved, other grid, other contrast
    source_world: Path  # same anatomy position, other grid, other contrast
    source_far: Path  # the moved source 600 mm away: no overlap
    truth: sitk.Transform  # target point (LPS) -> source point
    landmarks: np.ndarray  # (N, 3) LPS points inside the brain


def downsample(image: sitk.Image, spacing: float) -> sitk.Image:
    size = [int(round(n * s / spacing)) for n, s in zip(image.GetSize(), image.GetSpacing())]
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing((spacing,) * 3)
    grid.SetOrigin(image.GetOrigin())
    grid.SetDirection(image.GetDirection())
    smooth = sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), spacing / 2.5)
    return sitk.Resample(smooth, grid, sitk.Transform(), sitk.sitkLinear, 0.0)


def make_brain_case(folder: Path, target_mm: float = 2.0, source_spacing=(2.0, 2.0, 3.0), angles=(8.0, -6.0, 7.0),
                    shift=(10.0, -12.0, 7.0)) -> BrainCase:
    """Write the case into ``folder``: target at ``target_mm``, sources on ``source_spacing`` grids."""
    folder.mkdir(parents=True, exist_ok=True)
    t1, gm, wm = (read_nifti(mni152(k)) for k in ("t1", "gm", "wm"))
    brain = ndimage.binary_fill_holes(t1.array > 0)
    pet = volume_to_sitk(t1.with_array(pet_like(gm.array, wm.array, brain, t1.spacing, seed=1)))
    target_img = downsample(volume_to_sitk(t1), target_mm) if target_mm != 1.0 else volume_to_sitk(t1)
    truth = rigid_transform(angles, shift, image_centre(target_img))
    paths = {name: folder / f"{name}.nii.gz" for name in ("target", "source", "source_world", "source_far")}
    write_nifti(sitk_to_volume(target_img), paths["target"])
    moved = move_onto_grid(pet, truth, source_spacing, FLIP_X, offset_mm=(15.0, -9.0, 6.0))
    write_nifti(sitk_to_volume(moved, units="SUV"), paths["source"])
    still = move_onto_grid(pet, sitk.Transform(3, sitk.sitkIdentity), source_spacing, FLIP_X, offset_mm=(-11.0, 8.0, 5.0))
    write_nifti(sitk_to_volume(still, units="SUV"), paths["source_world"])
    far = sitk.Image(moved)
    far.SetOrigin(tuple(np.asarray(moved.GetOrigin()) + (600.0, 0.0, 0.0)))
    write_nifti(sitk_to_volume(far, units="SUV"), paths["source_far"])
    # landmarks: 40 voxels spread through the brain, at least 6 mm inside it
    inner = ndimage.binary_erosion(brain, iterations=6)
    idx = np.argwhere(inner)[np.random.default_rng(0).choice(int(inner.sum()), 40, replace=False)]
    t1_img = volume_to_sitk(t1)
    landmarks = np.array([t1_img.TransformIndexToPhysicalPoint([int(v) for v in i]) for i in idx])
    manifest = folder / "pairs.csv"
    manifest.write_text("subject,source,target\n" + "".join(
        f"{name},{paths[name].name},{paths['target'].name}\n" for name in ("source", "source_world", "source_far")))
    return BrainCase(folder=folder, manifest=manifest, truth=truth, landmarks=landmarks, **paths)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/pairs")
    parser.add_argument("--target-mm", type=float, default=2.0)
    parser.add_argument("--source-spacing", type=float, nargs=3, default=(2.0, 2.0, 3.0))
    args = parser.parse_args(argv)
    case = make_brain_case(Path(args.out), target_mm=args.target_mm, source_spacing=tuple(args.source_spacing))
    print(f"pair case written to {case.folder}; manifest {case.manifest}")


if __name__ == "__main__":
    main()
