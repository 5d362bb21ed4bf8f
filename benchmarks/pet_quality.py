"""Held-out quality of the low-dose PET bundle on Colin27 phantoms, against Gaussian post-filters
whose width is chosen on the validation subjects.

Test sets: ``--heldout`` (data_scripts/make_heldout_pet.py: Colin27 anatomy, which no training or
validation subject is made from, at each voxel size it holds, every subject scanned by both
simulators, ``osem`` and ``image``). For each set, simulator and dose (1/4, 1/10, 1/20), inside the
brain mask:

- PSNR against the noise-free truth (the activity blurred by the system resolution) and against
  the full-dose scan of the same simulator, both with the truth's maximum in the brain as the data
  range (so the two columns share one scale); SSIM against the truth;
- per lesion: contrast recovery (lesion mean over the mean of a 5 mm shell around it, divided by
  the same ratio in the truth), SUVmean bias and SUVmax bias relative to the truth's lesion mean
  and maximum (fractions; 0 is unbiased).

Methods: the low-dose scan as is; a Gaussian post-filter whose FWHM (mm, on each scan's own voxel
size) is chosen per dose on the validation subjects of ``--val`` (make_pet_data.py's ``val``
split; never on the test sets), once to maximise the mean brain PSNR against the truth and once
against the full dose; the bundle's predictor (configs/inference.yaml, fp32, as a user runs it)
and, with ``--weights NAME=PATH``, other generator checkpoints in the same predictor
(``--training-spacing NAME=LOW,HIGH`` gives one of them its own training voxel sizes,
``--stages NAME=N`` makes it a chain of N generators, e.g. configs/train_progressive.yaml's). The
full-dose scan itself is scored too (it is what the methods approach against the truth).
The table (``--markdown``) gives each set, simulator, dose and method over all subjects: mean
PSNR and SSIM, lesion figures over all their lesions; the JSON has every subject and lesion.

Usage: python benchmarks/pet_quality.py --heldout data/heldout_pet --val data/pet \
           --bundle bundles/pet_lowdose_cgan [--weights NAME=PATH ...] [--stages NAME=N ...]
           [--json out.json] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from volgan.io import read_nifti
from volgan.metrics import lesion_contrasts, psnr, ssim

DOSES = {"1/4": "dose-4", "1/10": "dose-10", "1/20": "dose-20"}
FWHMS_MM = (0.0, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 7.0, 8.0, 10.0)
SIGMA_PER_FWHM = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def gaussian_mm(image: np.ndarray, fwhm_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Gaussian filter of ``fwhm_mm`` on a grid of ``spacing`` mm (0: the image unchanged)."""
    if fwhm_mm <= 0:
        return np.asarray(image, dtype=np.float32)
    sigmas = [fwhm_mm * SIGMA_PER_FWHM / float(s) for s in spacing]
    return ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), sigmas, mode="nearest")


def lesion_scores(image: np.ndarray, truth: np.ndarray, lesions: np.ndarray, spacing: Sequence[float]) -> dict[int, dict]:
    """Per lesion label: contrast recovery against the truth's contrast, SUVmean and SUVmax bias
    (fractions of the truth's lesion mean and maximum)."""
    ours = lesion_contrasts(image, lesions, spacing)
    reference = lesion_contrasts(truth, lesions, spacing)
    out = {}
    for label in ours:
        inside = lesions == label
        mean_true, max_true = float(truth[inside].mean()), float(truth[inside].max())
        out[label] = {
            "contrast_recovery": ours[label] / reference[label],
            "suv_mean_bias": float(image[inside].mean()) / mean_true - 1.0,
            "suv_max_bias": float(image[inside].max()) / max_true - 1.0,
        }
    return out


def scores(image: np.ndarray, subject: dict) -> dict:
    """Brain PSNR against the truth and the full dose, SSIM against the truth, lesion figures."""
    truth, brain = subject["truth"], subject["brain"]
    peak = float(truth[brain].max())
    per_lesion = lesion_scores(image, truth, subject["lesions"], subject["spacing"])

    def summary(key: str) -> dict:
        values = [v[key] for v in per_lesion.values()]
        return {f"{key}_mean": round(float(np.mean(values)), 4), f"{key}_min": round(float(np.min(values)), 4),
                f"{key}_max": round(float(np.max(values)), 4)}

    return {
        "psnr_truth": round(psnr(image, truth, data_range=peak, mask=brain), 2),
        "psnr_full": round(psnr(image, subject["full"], data_range=peak, mask=brain), 2),
        "ssim_truth": round(ssim(image, truth, data_range=peak, mask=brain), 4),
        **summary("contrast_recovery"), **summary("suv_mean_bias"), **summary("suv_max_bias"),
        "lesions": {str(k): {m: round(x, 4) for m, x in v.items()} for k, v in per_lesion.items()},
    }


def choose_fwhm(subjects: Sequence[dict], dose: str, fwhms: Sequence[float] = FWHMS_MM) -> dict:
    """The FWHM (mm) with the best mean brain PSNR over ``subjects`` against the truth and against
    the full dose, for the scans ``subject[dose]``; with the mean PSNRs of every width."""
    table = {"truth": [], "full": []}
    for width in fwhms:
        for ref in table:
            values = []
            for s in subjects:
                peak = float(s["truth"][s["brain"]].max())
                values.append(psnr(gaussian_mm(s[dose], width, s["spacing"]), s[ref], data_range=peak, mask=s["brain"]))
            table[ref].append(float(np.mean(values)))
    best = {ref: float(fwhms[int(np.argmax(v))]) for ref, v in table.items()}
    return {"fwhm_mm": best, "mean_psnr": {ref: dict(zip(map(str, fwhms), np.round(v, 3).tolist())) for ref, v in table.items()}}


def _read(path: Path) -> np.ndarray:
    return np.asarray(read_nifti(path).array, dtype=np.float32)


def validation_subjects(folder: Path, doses: Sequence[str]) -> list[dict]:
    """make_pet_data.py's validation subjects in ``folder`` (``sub-XX_truth/full/brain/dose-N``)."""
    subjects = []
    for truth_path in sorted(folder.glob("sub-*_truth.nii.gz")):
        name = truth_path.name[: -len("_truth.nii.gz")]
        truth = read_nifti(truth_path)
        subject = {"name": name, "truth": np.asarray(truth.array, np.float32), "spacing": truth.spacing,
                   "full": _read(folder / f"{name}_full.nii.gz"), "brain": _read(folder / f"{name}_brain.nii.gz") > 0}
        subject.update({key: _read(folder / f"{name}_{key}.nii.gz") for key in doses})
        subjects.append(subject)
    if not subjects:
        raise SystemExit(f"{folder}: no validation subjects (sub-XX_truth.nii.gz); build them with data_scripts/make_pet_data.py")
    return subjects


def heldout_subjects(root: Path) -> list[dict]:
    """make_heldout_pet.py's subjects under ``root`` (``<set>/sub-XX/phantom.json`` and its images)."""
    subjects = []
    for meta_path in sorted(root.glob("*/sub-*/phantom.json")):
        folder = meta_path.parent
        truth = read_nifti(folder / "truth.nii.gz")
        subjects.append({
            "set": folder.parent.name, "name": folder.name, "folder": folder, "truth_volume": truth,
            "truth": np.asarray(truth.array, np.float32), "spacing": truth.spacing,
            "brain": _read(folder / "brain_mask.nii.gz") > 0,
            "lesions": np.asarray(read_nifti(folder / "lesion_mask.nii.gz").array).astype(np.int16),
            "simulators": sorted(json.loads(meta_path.read_text())["simulators"]),
        })
    if not subjects:
        raise SystemExit(f"{root}: no held-out subjects (*/sub-XX/phantom.json); build them with data_scripts/make_heldout_pet.py")
    return subjects


def evaluate(heldout: Sequence[dict], chosen: dict[str, dict], predictors: dict, doses: dict[str, str]) -> list[dict]:
    """One row per held-out subject, simulator, dose and method (and the full-dose scan)."""
    rows = []
    for subject in heldout:
        for simulator in subject["simulators"]:
            folder = subject["folder"]
            full = read_nifti(folder / f"{simulator}_full.nii.gz")
            case = {**subject, "full": np.asarray(full.array, np.float32)}
            where = {"set": subject["set"], "subject": subject["name"], "simulator": simulator}
            rows.append({**where, "dose": "full", "method": "full-dose scan", **scores(case["full"], case)})
            for dose, key in doses.items():
                low = read_nifti(folder / f"{simulator}_{key}.nii.gz")
                row = {**where, "dose": dose}
                rows.append({**row, "method": "low dose", **scores(np.asarray(low.array, np.float32), case)})
                for ref, label in (("truth", "truth"), ("full", "full dose")):
                    width = chosen[key]["fwhm_mm"][ref]
                    rows.append({**row, "method": f"Gaussian tuned vs {label} ({width:g} mm)", "fwhm_mm": width,
                                 **scores(gaussian_mm(low.array, width, subject["spacing"]), case)})
                for name, predictor in predictors.items():
                    start = time.perf_counter()
                    estimate = np.asarray(predictor.predict(low).array, np.float32)
                    rows.append({**row, "method": name, **scores(estimate, case),
                                 "seconds": round(time.perf_counter() - start, 2)})
                print(f"{subject['set']} {subject['name']} {simulator} {dose}: done", flush=True)
    return rows


LESION_KEYS = ("contrast_recovery", "suv_mean_bias", "suv_max_bias")


def summarise(rows: Sequence[dict]) -> list[dict]:
    """Rows of the same set, simulator, dose and method merged over subjects: the mean of the
    image figures, and the lesion figures over all their lesions (mean, min, max)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["set"], r["simulator"], r["dose"], r["method"]), []).append(r)
    out = []
    for (set_, simulator, dose, method), members in groups.items():
        merged = {"set": set_, "simulator": simulator, "dose": dose, "method": method, "subjects": len(members)}
        for key in ("psnr_truth", "psnr_full", "ssim_truth"):
            merged[key] = round(float(np.mean([m[key] for m in members])), 4 if key.startswith("ssim") else 2)
        for key in LESION_KEYS:
            values = [lesion[key] for m in members for lesion in m["lesions"].values()]
            merged.update({f"{key}_mean": round(float(np.mean(values)), 4), f"{key}_min": round(float(np.min(values)), 4),
                           f"{key}_max": round(float(np.max(values)), 4)})
        merged["lesion_count"] = sum(len(m["lesions"]) for m in members)
        out.append(merged)
    return out


def markdown(rows: Sequence[dict]) -> str:
    """The rows as a Markdown table (lesion figures: mean over lesions, range in brackets)."""
    lines = ["| Set | Simulator | Dose | Method | PSNR vs truth (dB) | PSNR vs full dose (dB) | SSIM vs truth | "
             "Contrast recovery mean (min-max) | SUVmean bias mean (min-max) | SUVmax bias mean (min-max) |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def spread(r: dict, key: str, pct: bool) -> str:
        f = (lambda v: f"{100 * v:+.1f} %") if pct else (lambda v: f"{v:.3f}")
        return f"{f(r[key + '_mean'])} ({f(r[key + '_min'])} to {f(r[key + '_max'])})"

    for r in rows:
        lines.append(f"| {r['set']} | {r['simulator']} | {r['dose']} | {r['method']} | {r['psnr_truth']:.2f} | "
                     f"{r['psnr_full']:.2f} | {r['ssim_truth']:.4f} | {spread(r, 'contrast_recovery', False)} | "
                     f"{spread(r, 'suv_mean_bias', True)} | {spread(r, 'suv_max_bias', True)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heldout", type=Path, default=Path("data/heldout_pet"))
    parser.add_argument("--val", type=Path, default=Path("data/pet"), help="make_pet_data.py's output (its val/ folder)")
    parser.add_argument("--bundle", type=Path, default=Path("bundles/pet_lowdose_cgan"))
    parser.add_argument("--no-bundle", action="store_true", help="leave out the bundle's own weights")
    parser.add_argument("--weights", nargs="*", default=[], help="other checkpoints as NAME=PATH")
    parser.add_argument("--training-spacing", nargs="*", default=[], help="NAME=LOW,HIGH for a --weights entry")
    parser.add_argument("--stages", nargs="*", default=[], help="NAME=N: a --weights entry of N chained generators")
    parser.add_argument("--doses", nargs="+", default=list(DOSES), choices=list(DOSES))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    doses = {d: DOSES[d] for d in args.doses}
    from volgan.bundle import bundle_predictor

    cpu = "$torch.device('cpu')"
    spacing = dict(s.split("=", 1) for s in args.training_spacing)
    stages = {name: int(n) for name, n in (s.split("=", 1) for s in args.stages)}
    predictors = {} if args.no_bundle else {"bundle": bundle_predictor(args.bundle, device=cpu)}
    for spec in args.weights:
        name, path = spec.split("=", 1)
        extra = {"training_spacing": [float(v) for v in spacing[name].split(",")]} if name in spacing else {}
        if name in stages:
            extra["stages"] = stages[name]
        predictors[name] = bundle_predictor(args.bundle, device=cpu, ckpt_path=path, **extra)
    val = validation_subjects(args.val / "val", list(doses.values()))
    chosen = {key: choose_fwhm(val, key) for key in doses.values()}
    for key, c in chosen.items():
        print(f"{key}: Gaussian FWHM on validation {c['fwhm_mm']}", flush=True)
    rows = evaluate(heldout_subjects(args.heldout), chosen, predictors, doses)
    result = {
        "validation_subjects": [s["name"] for s in val],
        "validation_spacings_mm": [np.round(s["spacing"], 2).tolist() for s in val],
        "gaussian_choice": chosen,
        "psnr_data_range": "the truth's maximum in the brain mask",
        "rows": rows,
        "summary": summarise(rows),
    }
    table = markdown(result["summary"])
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    if args.markdown:
        args.markdown.write_text(table)
    return result


if __name__ == "__main__":
    main()
