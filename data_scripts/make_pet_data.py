"""Brain FDG PET phantoms and their simulated low-dose scans, for the low-dose PET cGAN bundle.

Every subject is nilearn's MNI152 grey/white matter anatomy (1 mm), moved by its own random
affine and smooth elastic deformation, with FDG-like uptake in SUV (grey matter 8, white matter 2,
CSF 0.1: about 4:1:0.05), a smooth regional variation of grey-matter uptake (+-12 %), scalp and
skull uptake, and a few small hot lesions at random places. Each phantom is averaged onto a 2 mm
grid (a typical PET voxel) and scanned with ``volgan.degrade.pet.simulate_doses``: the same
projector, attenuation (water head, bone skull), scatter, randoms and OSEM at every dose, with
about 1e8 prompts at full dose. Subjects differ in anatomy (deformation), uptake pattern and
lesion layout; the test subject's seed is never used for training or validation.

Writes into ``--out`` (default data/pet), per subject ``sub-XX`` of split train/val/test:
``sub-XX_activity.nii.gz`` (true SUV), ``sub-XX_full.nii.gz`` (full-dose reconstruction),
``sub-XX_dose-4.nii.gz`` and ``sub-XX_dose-10.nii.gz`` (1/4 and 1/10 dose), ``sub-XX_brain.nii.gz``
(brain mask), ``sub-XX_lesions.nii.gz`` (lesion labels 1..n), for training and validation
subjects ``sub-XX_sampling.nii.gz`` (1 brain, 2 lesions: the manifests' mask), for the test subject also
``sub-XX_noisefree.nii.gz`` (the full-dose scan with 1e4 times the counts); and ``train.csv``/``val.csv``
manifests pairing every low-dose scan with its subject's full-dose scan (volgan.data.manifest);
and ``demo/``: the test subject's 1/10-dose scan as NIfTI (SUV) and as a DICOM PET series (Bq/ml).
Existing subjects are kept (delete the folder to rebuild).

Usage: python data_scripts/make_pet_data.py --out data/pet [--train 6] [--val 1] [--test 1]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sources import mni152  # noqa: E402

from volgan.degrade.pet import simulate_doses  # noqa: E402
from volgan.io import Volume, read_nifti, write_nifti, write_pet_dicom_series  # noqa: E402

DOSES = {"full": 1.0, "dose-4": 0.25, "dose-10": 0.1}
SUV = {"gm": 8.0, "wm": 2.0, "csf": 0.1, "scalp": 0.8, "skull": 0.3}
MU_PER_CM = {"water": 0.096, "bone": 0.15}
SEEDS = {"train": 1, "val": 101, "test": 201}  # subject k of a split uses seed SEEDS[split] + k
TOTAL_COUNTS = 1e8
# a clinical-like brain protocol: OSEM 4 iterations x 12 subsets, 3 mm Gaussian post-filter
RECON = {"iterations": 4, "subsets": 12, "post_fwhm_mm": 3.0}
PET_MM = 2


@dataclass
class Phantom:
    activity: np.ndarray  # SUV, 1 mm grid
    mu_per_cm: np.ndarray
    brain: np.ndarray
    lesions: np.ndarray  # int labels


def templates() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grey and white matter probabilities, the template brain (T1 > 0) and the 1 mm affine."""
    t1, gm, wm = (read_nifti(mni152(k)) for k in ("t1", "gm", "wm"))
    return gm.array / 255.0, wm.array / 255.0, (t1.array > 0).astype(np.float32), t1.affine


def deformation(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Sampling coordinates: a random affine about the centre (scale +-7 %, rotation +-5 deg) plus
    a smooth elastic displacement (about 3 mm, 20 mm correlation length)."""
    centre = (np.asarray(shape) - 1) / 2.0
    angles = np.deg2rad(rng.uniform(-5, 5, 3))
    rot = np.eye(3)
    for axis, a in enumerate(angles):
        c, s = np.cos(a), np.sin(a)
        i, j = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rot = rot @ r
    matrix = rot @ np.diag(1.0 / rng.uniform(0.93, 1.07, 3))
    grid = np.indices(shape, dtype=np.float32).reshape(3, -1) - centre[:, None]
    coords = (matrix @ grid).reshape(3, *shape) + centre[:, None, None, None]
    coarse = [s // 8 + 2 for s in shape]
    for axis in range(3):
        field = ndimage.gaussian_filter(rng.normal(0, 1, coarse), 1.5)
        field *= 3.0 / max(field.std(), 1e-6)
        coords[axis] += ndimage.zoom(field, [s / c for s, c in zip(shape, coarse)], order=3)[: shape[0], : shape[1], : shape[2]]
    return coords


def place_lesions(brain: np.ndarray, rng: np.random.Generator, n: int = 6) -> np.ndarray:
    """``n`` spheres of radius 4-7 mm, centred at least 6 mm inside the brain and 20 mm apart."""
    inside = ndimage.binary_erosion(brain, iterations=6)
    candidates = np.argwhere(inside)
    labels = np.zeros(brain.shape, np.int16)
    centres: list[np.ndarray] = []
    grid = np.indices(brain.shape, dtype=np.float32)
    while len(centres) < n:
        c = candidates[rng.integers(len(candidates))]
        if any(np.linalg.norm(c - o) < 20 for o in centres):
            continue
        centres.append(c)
        radius = rng.uniform(4.0, 7.0)
        box = tuple(slice(max(int(x - 8), 0), int(x + 9)) for x in c)
        dist = np.sqrt(sum((grid[a][box] - c[a]) ** 2 for a in range(3)))
        labels[box][dist <= radius] = len(centres)
    return labels


def make_phantom(gm: np.ndarray, wm: np.ndarray, brain: np.ndarray, seed: int) -> Phantom:
    rng = np.random.default_rng(seed)
    coords = deformation(gm.shape, rng)
    gm, wm, brain = (ndimage.map_coordinates(a, coords, order=1, mode="constant") for a in (gm, wm, brain))
    brain = ndimage.binary_closing(brain > 0.5, iterations=2)
    csf = np.clip(brain - gm - wm, 0, 1)
    regional = ndimage.gaussian_filter(rng.normal(0, 1, gm.shape[:3]).astype(np.float32), 15)
    regional *= 0.12 / max(float(np.abs(regional).max()), 1e-6)
    activity = SUV["gm"] * gm * (1 + regional) + SUV["wm"] * wm + SUV["csf"] * csf
    near = ndimage.distance_transform_edt(~brain)
    skull = (near > 2) & (near <= 7)
    scalp = (near > 7) & (near <= 12)
    activity += SUV["skull"] * skull + SUV["scalp"] * scalp
    lesions = place_lesions(brain & ((gm + wm) > 0.5), rng)
    for label in range(1, int(lesions.max()) + 1):
        activity[lesions == label] *= rng.uniform(2.5, 4.0)
    mu = MU_PER_CM["water"] * (near <= 12) + (MU_PER_CM["bone"] - MU_PER_CM["water"]) * skull
    return Phantom(activity.astype(np.float32), mu.astype(np.float32), brain, lesions)


def block_mean(a: np.ndarray, f: int) -> np.ndarray:
    shape = [s // f for s in a.shape]
    a = a[: shape[0] * f, : shape[1] * f, : shape[2] * f]
    return a.reshape(shape[0], f, shape[1], f, shape[2], f).mean(axis=(1, 3, 5))


def block_mode(labels: np.ndarray, f: int) -> np.ndarray:
    """A coarse voxel takes a lesion's label when at least half of it lies in that lesion."""
    out = np.zeros([s // f for s in labels.shape], np.int16)
    for label in range(1, int(labels.max()) + 1):
        out[block_mean((labels == label).astype(np.float32), f) >= 0.5] = label
    return out


def coarse_affine(affine: np.ndarray, f: int) -> np.ndarray:
    out = affine.copy()
    out[:3, :3] = affine[:3, :3] * f
    out[:3, 3] = affine[:3, :3] @ np.full(3, (f - 1) / 2.0) + affine[:3, 3]
    return out


def write_subject(folder: Path, name: str, phantom: Phantom, affine: np.ndarray, seed: int, noise_free: bool = False) -> None:
    grid = coarse_affine(affine, PET_MM)
    activity = block_mean(phantom.activity, PET_MM)
    mu = block_mean(phantom.mu_per_cm, PET_MM)
    spacing = (float(PET_MM),) * 3
    start = time.perf_counter()
    scans = simulate_doses(activity, spacing, doses=tuple(DOSES.values()), total_counts=TOTAL_COUNTS,
                           mu_map=mu, seed=seed, **RECON)
    print(f"{name}: simulated {len(scans)} doses on {activity.shape} in {time.perf_counter() - start:.1f} s", flush=True)
    out = {"activity": activity, "brain": (block_mean(phantom.brain.astype(np.float32), PET_MM) >= 0.5).astype(np.uint8),
           "lesions": block_mode(phantom.lesions, PET_MM)}
    out.update({key: scans[dose] for key, dose in DOSES.items()})
    if noise_free:  # the same scan with 1e4 times the counts: what a perfect denoiser could reach
        out["noisefree"] = simulate_doses(activity, spacing, doses=(1.0,), total_counts=TOTAL_COUNTS * 1e4, mu_map=mu,
                                          seed=seed, **RECON)[1.0]
    # the lesion labels go last: a subject is complete once they exist
    for key in [k for k in out if k != "lesions"] + ["lesions"]:
        units = "1" if key in ("brain", "lesions") else "SUV"
        write_nifti(Volume(out[key], grid, units=units, dtype=np.dtype(out[key].dtype)), folder / f"{name}_{key}.nii.gz")


def write_sampling_map(folder: Path, name: str) -> None:
    """``sub-XX_sampling.nii.gz``: 1 in the brain, 2 in the lesions (the manifests' mask, so training
    can draw patches around the rare lesions more often)."""
    path = folder / f"{name}_sampling.nii.gz"
    if path.is_file():
        return
    brain = read_nifti(folder / f"{name}_brain.nii.gz")
    lesions = read_nifti(folder / f"{name}_lesions.nii.gz").array > 0
    labels = np.where(lesions, 2, brain.array > 0).astype(np.uint8)
    write_nifti(brain.with_array(labels, dtype=np.dtype(np.uint8)), path)


def write_manifest(folder: Path, names: list[str], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["subject", "source", "target", "mask", "align"])
        for name in names:
            for key in DOSES:
                if key != "full":
                    writer.writerow([f"{name}_{key}", f"{folder.name}/{name}_{key}.nii.gz", f"{folder.name}/{name}_full.nii.gz",
                                     f"{folder.name}/{name}_sampling.nii.gz", "auto"])


def write_demo(test: Path, name: str, demo: Path) -> None:
    """The test subject's 1/10-dose scan twice: as NIfTI in SUV, and as a DICOM PET series in Bq/ml
    (70 kg, 370 MBq F-18 injected 60 min before the scan, decay-corrected to its start)."""
    demo.mkdir(parents=True, exist_ok=True)
    scan = read_nifti(test / f"{name}_dose-10.nii.gz")
    write_nifti(scan, demo / f"{name}_dose-10.nii.gz")
    weight_kg, dose_bq = 70.0, 370e6
    injection = dt.datetime(2026, 1, 5, 9, 0, 0)
    uptake = dt.timedelta(minutes=60)
    decayed = dose_bq * 0.5 ** (uptake.total_seconds() / 6586.2)
    bq_per_ml = scan.with_array(scan.array * np.float32(decayed / (weight_kg * 1000.0)), units="Bq/ml")
    write_pet_dicom_series(bq_per_ml, demo / f"{name}_dose-10_dicom", weight_kg=weight_kg, injected_dose_bq=dose_bq,
                           injection_time=injection, series_time=injection + uptake)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/pet"))
    for split, n in (("train", 6), ("val", 1), ("test", 1)):
        parser.add_argument(f"--{split}", type=int, default=n, help=f"number of {split} subjects")
    args = parser.parse_args(argv)
    gm, wm, brain, affine = templates()
    for split in SEEDS:
        folder = args.out / split
        folder.mkdir(parents=True, exist_ok=True)
        names = [f"sub-{SEEDS[split] + k:03d}" for k in range(getattr(args, split))]
        for name in names:
            if (folder / f"{name}_lesions.nii.gz").is_file():
                continue
            seed = int(name.split("-")[1])
            write_subject(folder, name, make_phantom(gm, wm, brain, seed), affine, seed, noise_free=split == "test")
        if split != "test":
            for name in names:
                write_sampling_map(folder, name)
            write_manifest(folder, names, args.out / f"{split}.csv")
        elif names and not (args.out / "demo" / f"{names[0]}_dose-10_dicom").is_dir():
            write_demo(folder, names[0], args.out / "demo")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
