"""benchmarks/pet_quality.py: Gaussian widths in mm, per-lesion scores against the truth, the
validation-only choice of the Gaussian's width, and a whole run on tiny held-out and validation sets."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from benchmarks.pet_quality import choose_fwhm, gaussian_mm, lesion_scores, main, summarise

ROOT = Path(__file__).resolve().parents[2]


def test_gaussian_width_is_in_mm_whatever_the_voxel_size():
    def variance(spacing: float) -> float:
        n = 41
        delta = np.zeros((n, n, n), np.float32)
        delta[n // 2, n // 2, n // 2] = 1.0
        profile = gaussian_mm(delta, 6.0, (spacing,) * 3).sum((1, 2))
        x = (np.arange(n) - n // 2) * spacing
        return float((profile * x**2).sum() / profile.sum())

    sigma_mm = 6.0 / 2.3548
    assert variance(1.0) == pytest.approx(sigma_mm**2, rel=0.02)
    assert variance(2.0) == pytest.approx(sigma_mm**2, rel=0.05)
    image = np.random.default_rng(0).random((6, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(gaussian_mm(image, 0.0, (2.0, 2.0, 2.0)), image)


def _lesion_case():
    truth = np.full((32, 32, 32), 2.0, np.float32)
    lesions = np.zeros(truth.shape, np.int16)
    lesions[8:14, 8:14, 8:14] = 1
    lesions[20:23, 20:23, 20:23] = 2
    truth[lesions == 1] = 8.0
    truth[lesions == 2] = 6.0
    return truth, lesions


def test_lesion_scores_against_the_truth():
    truth, lesions = _lesion_case()
    same = lesion_scores(truth, truth, lesions, (2.0, 2.0, 2.0))
    for s in same.values():
        assert s == {"contrast_recovery": pytest.approx(1.0), "suv_mean_bias": pytest.approx(0.0),
                     "suv_max_bias": pytest.approx(0.0)}
    scaled = lesion_scores(1.1 * truth, truth, lesions, (2.0, 2.0, 2.0))
    for s in scaled.values():  # a global scale keeps contrast but biases SUVs
        assert s["contrast_recovery"] == pytest.approx(1.0)
        assert s["suv_mean_bias"] == pytest.approx(0.1, abs=1e-5)
        assert s["suv_max_bias"] == pytest.approx(0.1, abs=1e-5)
    blurred = lesion_scores(gaussian_mm(truth, 8.0, (2.0,) * 3), truth, lesions, (2.0, 2.0, 2.0))
    assert blurred[2]["contrast_recovery"] < blurred[1]["contrast_recovery"] < 1.0  # the smaller lesion loses more
    assert blurred[2]["suv_max_bias"] < 0 and blurred[2]["suv_mean_bias"] < 0


def _subject(seed: int, noise: float, spacing=(2.0, 2.0, 2.0)) -> dict:
    rng = np.random.default_rng(seed)
    truth = gaussian_mm(rng.uniform(1.0, 5.0, (24, 24, 24)).astype(np.float32), 8.0, spacing)
    return {"truth": truth, "full": truth + rng.normal(0, noise / 3, truth.shape).astype(np.float32),
            "dose-4": truth + rng.normal(0, noise, truth.shape).astype(np.float32),
            "brain": np.ones(truth.shape, bool), "spacing": spacing}


def test_the_gaussian_width_is_chosen_on_the_given_subjects_only():
    noisy = choose_fwhm([_subject(1, 1.0), _subject(2, 1.0)], "dose-4")
    assert noisy["fwhm_mm"]["truth"] >= 4.0
    clean = choose_fwhm([_subject(1, 0.0)], "dose-4")
    assert clean["fwhm_mm"]["truth"] == 0.0
    widths = [float(w) for w in noisy["mean_psnr"]["truth"]]
    best = max(widths, key=lambda w: noisy["mean_psnr"]["truth"][str(w)])
    assert best == noisy["fwhm_mm"]["truth"]


def _save(path: Path, array: np.ndarray, spacing: float) -> None:
    nib.save(nib.Nifti1Image(array, np.diag([spacing, spacing, spacing, 1.0])), path)


def _tiny_sets(tmp_path: Path) -> None:
    """Two validation subjects (tmp_path/pet/val) and one held-out subject at 2 and 3 mm
    (tmp_path/heldout), both simulators, 1/4 dose."""
    val = tmp_path / "pet" / "val"
    val.mkdir(parents=True)
    for k, seed in enumerate((1, 2)):
        s = _subject(seed, 0.8, (2.5, 2.5, 2.5))
        for key in ("truth", "full", "dose-4"):
            _save(val / f"sub-10{k}_{key}.nii.gz", s[key].astype(np.float32), 2.5)
        _save(val / f"sub-10{k}_brain.nii.gz", s["brain"].astype(np.uint8), 2.5)
    truth, lesions = _lesion_case()
    truth = gaussian_mm(truth, 4.0, (2.0,) * 3)
    rng = np.random.default_rng(3)
    for size in (2.0, 3.0):
        folder = tmp_path / "heldout" / f"colin27_{size:g}mm" / "sub-01"
        folder.mkdir(parents=True)
        _save(folder / "truth.nii.gz", truth, size)
        _save(folder / "brain_mask.nii.gz", np.ones(truth.shape, np.uint8), size)
        _save(folder / "lesion_mask.nii.gz", lesions, size)
        for sim in ("osem", "image"):
            _save(folder / f"{sim}_full.nii.gz", truth + rng.normal(0, 0.2, truth.shape).astype(np.float32), size)
            _save(folder / f"{sim}_dose-4.nii.gz", truth + rng.normal(0, 0.6, truth.shape).astype(np.float32), size)
        (folder / "phantom.json").write_text(json.dumps({"simulators": {"osem": "", "image": ""}}))


@pytest.mark.slow
def test_a_whole_run_on_tiny_sets_with_the_bundle(tmp_path):
    """Validation subjects choose the widths; every held-out set, simulator and method is scored."""
    _tiny_sets(tmp_path)
    out = tmp_path / "result.json"
    result = main(["--heldout", str(tmp_path / "heldout"), "--val", str(tmp_path / "pet"), "--doses", "1/4",
                   "--bundle", str(ROOT / "bundles" / "pet_lowdose_cgan"), "--json", str(out),
                   "--markdown", str(tmp_path / "table.md")])
    assert json.loads(out.read_text())["gaussian_choice"] == result["gaussian_choice"]
    rows = result["rows"]
    # per set and simulator: the full-dose scan, the low dose, two Gaussians, the bundle
    assert len(rows) == 2 * 2 * 5
    assert {r["set"] for r in rows} == {"colin27_2mm", "colin27_3mm"}
    chosen = result["gaussian_choice"]["dose-4"]["fwhm_mm"]
    assert {r["fwhm_mm"] for r in rows if "fwhm_mm" in r} == {chosen["truth"], chosen["full"]}
    for r in rows:
        assert set(r["lesions"]) == {"1", "2"}
        if r["method"].startswith("Gaussian") and r["fwhm_mm"] > 0:
            low = next(x for x in rows if x["set"] == r["set"] and x["simulator"] == r["simulator"] and x["method"] == "low dose")
            assert r["psnr_truth"] > low["psnr_truth"]  # the noise here is white: any smoothing helps
    assert len(result["summary"]) == len(rows)  # one subject per set
    assert (tmp_path / "table.md").read_text().count("\n") == len(rows) + 2


@pytest.mark.slow
def test_a_two_stage_generator_from_a_weights_file(tmp_path):
    """--stages NAME=2 runs a --weights file as a chain of two U-Nets: a chain whose second stage
    is untrained (zero last layer, residual) scores as its first stage alone does."""
    import torch

    from volgan.networks import ConcatenatedGenerator

    _tiny_sets(tmp_path)
    shipped = ROOT / "bundles" / "pet_lowdose_cgan" / "models" / "model.pt"
    chain = ConcatenatedGenerator(2, "small", residual=True)
    chain.stages[0].load_state_dict(torch.load(shipped, weights_only=True))
    torch.save(chain.state_dict(), tmp_path / "chain.pt")
    result = main(["--heldout", str(tmp_path / "heldout"), "--val", str(tmp_path / "pet"), "--doses", "1/4",
                   "--bundle", str(ROOT / "bundles" / "pet_lowdose_cgan"), "--no-bundle",
                   "--weights", f"single={shipped}", f"chain={tmp_path / 'chain.pt'}", "--stages", "chain=2"])
    rows = {(r["set"], r["simulator"], r["method"]): r for r in result["rows"]}
    pairs = [(r, rows[(s, sim, "chain")]) for (s, sim, m), r in rows.items() if m == "single"]
    assert len(pairs) == 4
    for single, chained in pairs:
        assert chained["psnr_truth"] == pytest.approx(single["psnr_truth"], abs=1e-3)
        assert chained["ssim_truth"] == pytest.approx(single["ssim_truth"], abs=1e-5)


def test_summary_averages_subjects_and_pools_their_lesions():
    def row(subject: str, psnr: float, recoveries: list[float]) -> dict:
        lesions = {str(k + 1): {"contrast_recovery": c, "suv_mean_bias": c - 1, "suv_max_bias": 0.0}
                   for k, c in enumerate(recoveries)}
        return {"set": "colin27_2mm", "subject": subject, "simulator": "osem", "dose": "1/4", "method": "bundle",
                "psnr_truth": psnr, "psnr_full": psnr - 1, "ssim_truth": 0.9, "lesions": lesions}

    other = {**row("sub-01", 30.0, [0.9]), "method": "low dose"}
    summary = summarise([row("sub-01", 30.0, [0.9, 0.7]), row("sub-02", 32.0, [1.0]), other])
    assert len(summary) == 2
    bundle = next(s for s in summary if s["method"] == "bundle")
    assert bundle["subjects"] == 2 and bundle["lesion_count"] == 3
    assert bundle["psnr_truth"] == 31.0 and bundle["psnr_full"] == 30.0
    assert bundle["contrast_recovery_mean"] == pytest.approx((0.9 + 0.7 + 1.0) / 3, abs=1e-4)
    assert bundle["contrast_recovery_min"] == 0.7 and bundle["contrast_recovery_max"] == 1.0
    assert bundle["suv_mean_bias_min"] == pytest.approx(-0.3)
