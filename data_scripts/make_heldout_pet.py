"""Build the held-out PET test sets: anatomy and lesion layouts never used in training or validation.

Anatomy: Colin27 (``ch2.nii.gz``, one subject's whole-head T1, 1 mm; ``ch2bet.nii.gz``, its brain)
from Debian's ``mricron-data`` (``apt-get install mricron-data``); the training draws come from
nilearn's MNI152 maps and pydeface's mean head (data/synth/anatomy.npz), which share no scan with it.
Grey matter, white matter and CSF are a three-class Gaussian mixture of the T1 intensity inside
``ch2bet`` (soft posteriors: partial volume); outside the brain, the head is split by intensity into
bright (scalp, fat) and dark (skull, muscle) classes. The anatomy is used as it is: no deformation.

Per voxel size (default 2 and 3 mm, isotropic) and subject (lesion layout, from ``--seed``, a seed
family no training script uses), :class:`volgan.data.synth.PetPhantomGenerator` draws 3-5 lesions
and simulates every dose with both simulators (the OSEM path of volgan.degrade.pet and the
image-domain path of volgan.degrade.pet_image_noise), with one resolution, count level and OSEM
protocol per set (options). Writes ``OUT/colin27_<size>mm/sub-XX/``:

- ``truth.nii.gz``: the activity blurred by the system resolution (the noise-free reference);
- ``activity.nii.gz``: the noise-free activity (SUV);
- ``<simulator>_full.nii.gz``, ``<simulator>_dose-4.nii.gz``, ``_dose-10``, ``_dose-20``: the scans;
- ``brain_mask.nii.gz``, ``lesion_mask.nii.gz`` (labels 1..n);
- ``phantom.json``: provenance (anatomy source, seeds, every drawn factor, files).

Usage: python data_scripts/make_heldout_pet.py --out data/heldout_pet [--sizes 2 3] [--subjects 1]
       [--seed 7919] [--fwhm 4.5] [--counts 1e8] [--iterations 3] [--post-fwhm 2]
Idempotent: a subject whose ``phantom.json`` exists is kept. The held-out sets are for testing
only: never train, validate or choose a hyper-parameter on them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from volgan.data.synth import TISSUES, PetPhantom, PetPhantomGenerator, TissueAnatomy, simulate_phantom
from volgan.io import Volume, read_nifti, write_nifti

COLIN = Path("/usr/share/mricron/templates")
SOURCE = "Colin27 ch2.nii.gz (whole-head T1) and ch2bet.nii.gz (brain), Debian mricron-data, 1 mm"
DOSE_NAMES = {1.0: "full", 0.25: "dose-4", 0.1: "dose-10", 0.05: "dose-20"}
SIMULATORS = ("osem", "image")


def gaussian_mixture(values: np.ndarray, classes: int = 3, iterations: int = 50) -> tuple[np.ndarray, ...]:
    """Means, standard deviations and weights of a 1D Gaussian mixture (EM from percentile starts)."""
    means = np.percentile(values, np.linspace(15, 85, classes))
    sds = np.full(classes, values.std() / classes)
    weights = np.full(classes, 1.0 / classes)
    for _ in range(iterations):
        post = posteriors(values, means, sds, weights)
        total = post.sum(0) + 1e-12
        weights = total / total.sum()
        means = (post * values[:, None]).sum(0) / total
        sds = np.sqrt((post * (values[:, None] - means) ** 2).sum(0) / total) + 1e-6
    order = np.argsort(means)
    return means[order], sds[order], weights[order]


def posteriors(values: np.ndarray, means: np.ndarray, sds: np.ndarray, weights: np.ndarray) -> np.ndarray:
    log = -0.5 * ((values[:, None] - means) / sds) ** 2 - np.log(sds) + np.log(weights)
    log -= log.max(1, keepdims=True)
    p = np.exp(log)
    return p / p.sum(1, keepdims=True)


def colin_anatomy() -> tuple[TissueAnatomy, np.ndarray]:
    """Colin27 as a :class:`TissueAnatomy` (1 mm) and the ch2 affine."""
    for name in ("ch2.nii.gz", "ch2bet.nii.gz"):
        if not (COLIN / name).is_file():
            raise SystemExit(f"{COLIN / name} not found: apt-get install mricron-data")
    head = read_nifti(COLIN / "ch2.nii.gz")
    t1 = head.array.astype(np.float32)
    brain = ndimage.binary_fill_holes(read_nifti(COLIN / "ch2bet.nii.gz").array > 0)
    if brain.shape != t1.shape:
        raise SystemExit(f"{COLIN / 'ch2bet.nii.gz'}: shape {brain.shape} differs from ch2's {t1.shape}")
    means, sds, weights = gaussian_mixture(t1[brain].astype(np.float64))
    post = posteriors(t1[brain].astype(np.float64), means, sds, weights).astype(np.float32)
    maps = np.zeros((len(TISSUES), *t1.shape), np.float32)
    for c, tissue in enumerate(("csf", "grey_matter", "white_matter")):  # dark to bright in T1
        maps[TISSUES.index(tissue)][brain] = post[:, c]
    head_mask = ndimage.binary_fill_holes(ndimage.binary_closing(t1 > 0.1 * float(t1.max()), iterations=3))
    outside = head_mask & ~brain
    smooth = ndimage.gaussian_filter(t1, 0.7)
    low, high = np.percentile(smooth[outside], (30, 70))
    bright = np.clip((smooth - low) / max(high - low, 1e-6), 0.0, 1.0)
    maps[TISSUES.index("scalp")][outside] = bright[outside]
    maps[TISSUES.index("skull")][outside] = 1.0 - bright[outside]
    template = np.clip(t1 / max(float(means[2]), 1e-6) * 0.85, 0.0, None)
    source = f"{SOURCE}; GM/WM/CSF: 3-class Gaussian mixture of T1 in ch2bet (means {np.round(means, 1).tolist()})"
    return TissueAnatomy(maps=maps, template=template, spacing=(1.0, 1.0, 1.0), source=source), head.affine


def write_subject(folder: Path, phantom: PetPhantom, scans: dict[str, PetPhantom], meta: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    affine = phantom.affine
    files: dict[str, str] = {}

    def put(name: str, array: np.ndarray, units: str) -> None:
        write_nifti(Volume(array, affine, units=units, dtype=np.dtype(array.dtype)), folder / f"{name}.nii.gz")
        files[name] = f"{name}.nii.gz"

    put("truth", phantom.truth, "SUV")
    put("activity", phantom.activity, "SUV")
    put("brain_mask", phantom.brain.astype(np.uint8), "1")
    put("lesion_mask", phantom.lesions, "1")
    for simulator, draw in scans.items():
        for dose, image in sorted(draw.scans.items(), reverse=True):
            put(f"{simulator}_{DOSE_NAMES[dose]}", image, "SUV")
    meta = {**meta, "phantom": phantom.params(), "files": files}
    meta["phantom"].pop("simulator", None)
    tmp = folder / "phantom.json.part"
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(folder / "phantom.json")  # written last: a subject is complete once it exists


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/heldout_pet"))
    parser.add_argument("--sizes", type=float, nargs="+", default=[2.0, 3.0], help="voxel sizes, mm")
    parser.add_argument("--subjects", type=int, default=1, help="lesion layouts per voxel size")
    parser.add_argument("--seed", type=int, default=7919, help="held-out seed family (never used in training)")
    parser.add_argument("--doses", type=float, nargs="+", default=sorted(DOSE_NAMES, reverse=True))
    parser.add_argument("--simulators", nargs="+", choices=SIMULATORS, default=list(SIMULATORS))
    parser.add_argument("--fwhm", type=float, default=4.5, help="system resolution, mm")
    parser.add_argument("--counts", type=float, default=1e8, help="full-dose prompts")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--subsets", type=int, default=12)
    parser.add_argument("--post-fwhm", type=float, default=2.0, help="reconstruction post-filter, mm (0: none)")
    parser.add_argument("--fov", type=float, nargs=3, default=[184.0, 220.0, 184.0], help="field of view, mm")
    args = parser.parse_args(argv)
    unknown = [d for d in args.doses if d not in DOSE_NAMES]
    if unknown or 1.0 not in args.doses:
        raise SystemExit(f"--doses must include 1 and be among {sorted(DOSE_NAMES)}, got {args.doses}")
    anatomy, _ = colin_anatomy()
    for size in args.sizes:
        generator = PetPhantomGenerator(
            anatomy, field_of_view_mm=args.fov, spacing_range=(size, size), anisotropic_probability=0.0,
            fwhm_range=(args.fwhm, args.fwhm), counts_range=(args.counts, args.counts), doses=args.doses,
            min_lesions=3, max_lesions=5, iterations_range=(args.iterations, args.iterations),
            subsets=args.subsets, post_fwhm_range=(args.post_fwhm, args.post_fwhm), centre_jitter_mm=0.0,
            max_rotation_deg=0.0, max_scale=0.0, max_shear=0.0, deformation_mm=0.0,
        )
        for k in range(args.subjects):
            folder = args.out / f"colin27_{size:g}mm" / f"sub-{k + 1:02d}"
            if (folder / "phantom.json").is_file():
                print(f"{folder}: exists; kept")
                continue
            seed = [args.seed, int(round(size * 1000)), k]
            start = time.perf_counter()
            phantom = generator.draw(np.random.default_rng(seed), simulator=None)
            scans = {sim: simulate_phantom(phantom, sim, args.doses) for sim in args.simulators}
            meta = {
                "anatomy": anatomy.source,
                "seed": seed,
                "voxel_size_mm": size,
                "simulators": {
                    "osem": "volgan.degrade.pet.simulate_doses: projector, water/bone attenuation, scatter, "
                            "randoms, Poisson counts (low doses thinned from the full dose), OSEM",
                    "image": "volgan.degrade.pet_image_noise.image_noise_doses: truth + correlated "
                             "activity-dependent noise at the counts' level, post-filtered",
                },
                "doses": {DOSE_NAMES[d]: d for d in sorted(args.doses, reverse=True)},
                "use": "held-out test only: never train, validate or choose anything on it",
                "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            }
            write_subject(folder, phantom, {s: scans[s] for s in args.simulators}, meta)
            print(f"{folder}: {phantom.shape} at {size:g} mm, {len(phantom.lesion_list)} lesions, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
