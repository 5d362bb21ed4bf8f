"""Brain FDG PET training data: scanner-realistic phantom draws and their simulated low-dose scans.

Every subject is a fresh draw of :class:`volgan.data.synth.PetPhantomGenerator` from the training
anatomy (data/synth/anatomy.npz: nilearn's MNI152 tissue maps and pydeface's mean head, built by
data_scripts/make_synth_anatomy.py), moved by a random affine and smooth deformation, on its own
scanner grid: voxel size (``--spacing-range``, 1.5-4 mm, isotropic or with its own axial size),
system resolution (``--fwhm-range``, 3-6 mm), full-dose counts (``--counts-range``), FDG-like uptake
ratios, 0-5 lesions (5-20 mm, 1.5-6 times their tissue) in grey or white matter, OSEM iterations and
post-filter. The scans at full, 1/4, 1/10 and 1/20 dose come from the OSEM path
(volgan.degrade.pet.simulate_doses); ``--image-noise-fraction`` makes that share of the subjects with
the image-domain path instead (volgan.degrade.pet_image_noise; keep 0 to leave it as an independent
check). Splits use separate seed families; the held-out test sets come from other anatomy
(data_scripts/make_heldout_pet.py).

Writes into ``--out`` (default data/pet), per subject ``sub-XX`` of split train/val/test, on the
subject's own grid: ``sub-XX_activity.nii.gz`` (true SUV), ``sub-XX_truth.nii.gz`` (the activity
blurred by the system resolution: the noise-free reference), ``sub-XX_full.nii.gz`` (full dose),
``sub-XX_dose-4/-10/-20.nii.gz``, ``sub-XX_brain.nii.gz``, ``sub-XX_lesions.nii.gz`` (labels 1..n),
``sub-XX.json`` (every drawn factor), for training and validation subjects ``sub-XX_sampling.nii.gz``
(1 brain, 2 lesions: the manifests' mask), for the test subjects also ``sub-XX_noisefree.nii.gz``
(the truth); ``train.csv``/``val.csv`` manifests pairing every low-dose scan with its subject's
full-dose scan (volgan.data.manifest), ``train_truth.csv``/``val_truth.csv`` pairing them with the
subject's noise-free truth instead; and ``demo/``: the first test subject's 1/10-dose scan as
NIfTI (SUV) and as a DICOM PET series (Bq/ml). Existing subjects are kept (delete the folder to rebuild).

Usage: python data_scripts/make_pet_data.py --out data/pet [--train 6] [--val 1] [--test 1]
       [--anatomy data/synth/anatomy.npz] [--spacing-range 1.5 4] [--fwhm-range 3 6]
       [--counts-range 3e7 3e8] [--image-noise-fraction 0]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np

from volgan.data.synth import PetPhantom, PetPhantomGenerator, TissueAnatomy
from volgan.io import Volume, read_nifti, write_nifti, write_pet_dicom_series

DOSES = {"full": 1.0, "dose-4": 0.25, "dose-10": 0.1, "dose-20": 0.05}
SEEDS = {"train": 1, "val": 101, "test": 201}  # subject k of a split uses seed SEEDS[split] + k


def write_subject(folder: Path, name: str, phantom: PetPhantom, test: bool = False) -> None:
    affine = phantom.affine
    out = {"activity": phantom.activity, "truth": phantom.truth, "brain": phantom.brain.astype(np.uint8)}
    out.update({key: phantom.scans[dose] for key, dose in DOSES.items()})
    if test:
        out["noisefree"] = phantom.truth
    (folder / f"{name}.json").write_text(json.dumps(phantom.params(), indent=2))
    # the lesion labels go last: a subject is complete once they exist
    out["lesions"] = phantom.lesions
    for key, array in out.items():
        units = "1" if key in ("brain", "lesions") else "SUV"
        write_nifti(Volume(array, affine, units=units, dtype=np.dtype(array.dtype)), folder / f"{name}_{key}.nii.gz")


def write_sampling_map(folder: Path, name: str) -> None:
    """``sub-XX_sampling.nii.gz``: 1 in the brain, 2 in the lesions (the manifests' mask, so training
    can draw patches around the rare lesions more often)."""
    path = folder / f"{name}_sampling.nii.gz"
    if path.is_file():
        return
    brain = read_nifti(folder / f"{name}_brain.nii.gz")
    # a subject may have no lesion: its label map is all zero, which read_nifti's checks refuse
    lesions = read_nifti(folder / f"{name}_lesions.nii.gz", check=False).array > 0
    labels = np.where(lesions, 2, brain.array > 0).astype(np.uint8)
    write_nifti(brain.with_array(labels, dtype=np.dtype(np.uint8)), path)


def write_manifest(folder: Path, names: list[str], path: Path, target: str = "full") -> None:
    """Pair every low-dose scan of ``names`` with its subject's ``target`` image: ``full`` (the
    full-dose scan, as with patient data) or ``truth`` (the noise-free activity blurred by the
    system resolution, which only a simulation knows)."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["subject", "source", "target", "mask", "align"])
        for name in names:
            for key in DOSES:
                if key != "full":
                    writer.writerow([f"{name}_{key}", f"{folder.name}/{name}_{key}.nii.gz", f"{folder.name}/{name}_{target}.nii.gz",
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
    parser.add_argument("--anatomy", type=Path, default=Path("data/synth/anatomy.npz"))
    parser.add_argument("--spacing-range", type=float, nargs=2, default=[1.5, 4.0], help="voxel size, mm")
    parser.add_argument("--fwhm-range", type=float, nargs=2, default=[3.0, 6.0], help="system resolution, mm")
    parser.add_argument("--counts-range", type=float, nargs=2, default=[3e7, 3e8], help="full-dose prompts")
    parser.add_argument("--fov", type=float, nargs=3, default=[208.0, 240.0, 184.0], help="field of view, mm")
    parser.add_argument("--image-noise-fraction", type=float, default=0.0,
                        help="share of subjects simulated by the image-domain path instead of OSEM")
    args = parser.parse_args(argv)
    if not args.anatomy.is_file():
        raise SystemExit(f"{args.anatomy} not found: build it with data_scripts/make_synth_anatomy.py")
    if not 0 <= args.image_noise_fraction <= 1:
        raise SystemExit(f"--image-noise-fraction must be in [0, 1], got {args.image_noise_fraction}")
    generator = PetPhantomGenerator(
        TissueAnatomy.load(args.anatomy), field_of_view_mm=args.fov, spacing_range=args.spacing_range,
        fwhm_range=args.fwhm_range, counts_range=args.counts_range, doses=tuple(DOSES.values()),
    )
    for split in SEEDS:
        folder = args.out / split
        folder.mkdir(parents=True, exist_ok=True)
        names = [f"sub-{SEEDS[split] + k:03d}" for k in range(getattr(args, split))]
        for name in names:
            if (folder / f"{name}_lesions.nii.gz").is_file():
                continue
            rng = np.random.default_rng(int(name.split("-")[1]))
            simulator = "image" if rng.uniform() < args.image_noise_fraction else "osem"
            start = time.perf_counter()
            phantom = generator.draw(rng, simulator=simulator)
            write_subject(folder, name, phantom, test=split == "test")
            print(f"{name}: {phantom.shape} at {np.round(phantom.spacing, 2).tolist()} mm, {simulator}, "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
        if split != "test":
            for name in names:
                write_sampling_map(folder, name)
            write_manifest(folder, names, args.out / f"{split}.csv")
            write_manifest(folder, names, args.out / f"{split}_truth.csv", target="truth")
        elif names and not (args.out / "demo" / f"{names[0]}_dose-10_dicom").is_dir():
            write_demo(folder, names[0], args.out / "demo")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
