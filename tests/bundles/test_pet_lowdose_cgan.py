"""The low-dose PET cGAN bundle through the real MONAI bundle CLI (and torchrun), on real files."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.bundles.bundle_checks import (
    ROOT,
    bundle_cli,
    ckpt_export_matches_eager,
    tiny_training_args,
    verify_metadata,
    verify_net_in_out,
)
from tests.conftest import phantom
from tests.io.test_pet_suv import SUV_PER_BQML_60MIN, pet_series
from volgan.degrade import simulate_doses
from volgan.io import read_volume
from volgan.metrics import psnr

BUNDLE = ROOT / "bundles" / "pet_lowdose_cgan"
CONFIGS = BUNDLE / "configs"
# training on files: the overlay on the phantom default
FILES = ("train.yaml", "train_files.yaml")
pytestmark = pytest.mark.slow


def scanned_phantom() -> tuple[np.ndarray, dict[float, np.ndarray], np.ndarray]:
    """A 48x48x40 PET phantom (2 mm voxels, SUV up to ~10, never used for training) with two hot
    spots, its full-dose and 1/10-dose scans from volgan's simulator at the bundle's count density,
    and a mask of where it has uptake."""
    activity = phantom((48, 48, 40), seed=11) / 10.0
    activity[20:23, 14:17, 18:21] *= 2.5
    activity[30:32, 30:32, 24:26] *= 3.0
    # about the training data's counts per voxel (1e8 for ~1.1 million voxels)
    scans = simulate_doses(activity, (2.0, 2.0, 2.0), doses=(1.0, 0.1), total_counts=8e6, seed=4,
                           iterations=4, subsets=12, post_fwhm_mm=4.0)
    return activity, scans, activity > 1.0


def test_inference_on_nifti_and_a_dicom_pet_series_in_their_units(tmp_path):
    activity, scans, mask = scanned_phantom()
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-40.0, -50.0, -30.0)
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(scans[0.1], affine), tmp_path / "in" / "low.nii.gz")
    # the same scan as a DICOM series in Bq/ml (370 MBq, 70 kg, 60 min uptake)
    pet_series(tmp_path / "in" / "pet_series", array=scans[0.1] / SUV_PER_BQML_60MIN, affine=affine)
    bundle_cli("run", "--config_file", str(CONFIGS / "inference.yaml"), "--bundle_root", str(BUNDLE),
               "--dataset_dir", str(tmp_path / "in"), "--output_dir", str(tmp_path / "out"))
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["low.nii.gz", "pet_series.nii.gz", "volgan_report.csv", "volgan_report.json"]

    low = nib.load(out / "low.nii.gz")
    np.testing.assert_allclose(low.affine, affine, atol=1e-4)
    estimate = low.get_fdata()
    peak = float(scans[1.0][mask].max())
    gain = psnr(estimate, scans[1.0], data_range=peak, mask=mask) - psnr(scans[0.1], scans[1.0], data_range=peak, mask=mask)
    assert gain > 2.0, f"the bundle gained only {gain:.2f} dB over its 1/10-dose input"

    series = read_volume(tmp_path / "in" / "pet_series")
    from_dicom = nib.load(out / "pet_series.nii.gz")
    assert from_dicom.shape == series.shape
    np.testing.assert_allclose(from_dicom.affine, series.affine, atol=1e-4)
    assert b"Bq/ml" in from_dicom.header["descrip"].tobytes()
    # Bq/ml back, the same estimate as from the SUV NIfTI (up to the series' int16 storage)
    in_suv = from_dicom.get_fdata() * SUV_PER_BQML_60MIN
    assert np.abs(in_suv - estimate)[mask].mean() < 0.01 * estimate[mask].mean()


def test_fast_mode_runs_typical_pet_volumes_in_one_window():
    """The U-Net's receptive field is wider than any window overlap: the config's max_window lets
    fast mode run PET volumes up to 256^3 whole (no seams), and split larger ones."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.yaml"))
    parser["bundle_root"], parser["fast"], parser["device"] = str(BUNDLE), True, "cpu"
    predictor = parser.get_parsed_content("network_predictor")
    assert len(predictor.plan((98, 116, 94))) == 1
    assert len(predictor.plan((400, 128, 128))) == 2


def test_verify_metadata_with_local_schema():
    verify_metadata(BUNDLE)


def test_verify_net_in_out():
    verify_net_in_out(BUNDLE)


def test_ckpt_export_gives_an_equivalent_torchscript(tmp_path):
    from volgan.networks import PetUNetGenerator

    ckpt_export_matches_eager(BUNDLE, PetUNetGenerator("small", residual=True), tmp_path / "model.ts")


@pytest.fixture
def pair_dataset(tmp_path):
    """Two training and one validation subject: Poisson-noisy 'low dose' and a cleaner 'full dose'
    in SUV, a brain mask, and the manifests that pair them."""
    data = tmp_path / "data"
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    for split, seeds in (("train", (1, 2)), ("val", (3,))):
        (data / split).mkdir(parents=True)
        rows = []
        for s in seeds:
            suv = phantom((40, 40, 36), seed=s) / 10.0
            rng = np.random.default_rng(s)
            files = {"full": rng.poisson(suv * 40) / 40.0, "low": rng.poisson(suv * 4) / 4.0, "brain": (suv > 1).astype(np.uint8)}
            for key, array in files.items():
                nib.save(nib.Nifti1Image(array.astype(np.float32 if key != "brain" else np.uint8), affine), data / split / f"s{s}_{key}.nii.gz")
            rows.append([f"s{s}", f"{split}/s{s}_low.nii.gz", f"{split}/s{s}_full.nii.gz", f"{split}/s{s}_brain.nii.gz", "auto"])
        with open(data / f"{split}.csv", "w", newline="") as fh:
            csv.writer(fh).writerows([["subject", "source", "target", "mask", "align"], *rows])
    return data


@pytest.fixture
def truth_dataset(pair_dataset):
    """pair_dataset plus the phantom layout of data_scripts/make_pet_data.py: each low-dose scan
    paired with its subject's noise-free truth in train_truth.csv / val_truth.csv."""
    for split in ("train", "val"):
        rows = list(csv.reader((pair_dataset / f"{split}.csv").open()))
        for row in rows[1:]:
            name = row[0]
            truth = phantom((40, 40, 36), seed=int(name[1:])) / 10.0
            nib.save(nib.Nifti1Image(truth, np.diag([2.0, 2.0, 2.0, 1.0])), pair_dataset / split / f"{name}_truth.nii.gz")
            row[2] = f"{split}/{name}_truth.nii.gz"
        with open(pair_dataset / f"{split}_truth.csv", "w", newline="") as fh:
            csv.writer(fh).writerows(rows)
    return pair_dataset


def train_args(tmp_path: Path, data: Path, *configs: str) -> list[str]:
    return tiny_training_args(BUNDLE, tmp_path, data, configs, "--warmup_iterations", "1", "--validate#roi_size", "[32, 32, 32]")


def test_train_on_files_resume_and_evaluate_through_the_cli(tmp_path, pair_dataset):
    """train.yaml + train_files.yaml: train.csv / val.csv pairs, model.pt and the state in ckpt_dir."""
    bundle_cli(*train_args(tmp_path, pair_dataset, *FILES))
    models = tmp_path / "models"
    assert (models / "model.pt").is_file()
    state = models / "training_state_checkpoint_epoch=2.pt"
    checkpoint = torch.load(state, weights_only=True)
    assert {"generator", "critic", "g_optimizer", "d_optimizer", "trainer"} <= set(checkpoint)
    assert checkpoint["trainer"]["iteration"] == 4

    resumed = bundle_cli(*train_args(tmp_path, pair_dataset, *FILES), "--max_epochs", "3", "--resume_from", str(state))
    assert f"Restored all variables from {state}" in resumed.stdout + resumed.stderr
    assert torch.load(models / "training_state_checkpoint_epoch=3.pt", weights_only=True)["trainer"]["iteration"] == 6

    bundle_cli(*train_args(tmp_path, pair_dataset, *FILES, "evaluate.yaml"))
    metrics = (tmp_path / "eval" / "metrics.csv").read_text()
    assert "val_psnr" in metrics and "val_ssim" in metrics


def test_a_bad_manifest_stops_training_before_it_starts_and_names_the_problem(tmp_path, pair_dataset):
    (pair_dataset / "train" / "s2_full.nii.gz").unlink()
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", *train_args(tmp_path, pair_dataset, *FILES)],
                          capture_output=True, encoding="utf-8", errors="replace", cwd=ROOT)
    assert proc.returncode != 0
    assert "s2_full.nii.gz" in proc.stdout + proc.stderr
    assert not (tmp_path / "models" / "model.pt").exists()


def test_multi_gpu_overlay_on_phantoms_under_torchrun_with_gloo(tmp_path, truth_dataset):
    """train.yaml + multi_gpu_train.yaml: rank 0 writes the state and the best validation generator."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    state_dir = tmp_path / "state"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
           "-m", "monai.bundle", *train_args(tmp_path, truth_dataset, "train.yaml", "multi_gpu_train.yaml"),
           "--state_dir", str(state_dir), "--patch_size", "[32, 32, 32]", "--max_epochs", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, encoding="utf-8", errors="replace", timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    state = torch.load(state_dir / "training_state_checkpoint_epoch=1.pt", weights_only=True)
    assert state["trainer"]["iteration"] == 2 and state["lr_scheduler"]["last_epoch"] == 2
    assert (state_dir / "generator_best_val.pt").is_file()


def test_train_yaml_alone_trains_on_phantoms_outside_the_bundle_and_resumes(tmp_path, truth_dataset):
    """train.yaml alone: pairs from the truth manifests, full state (with the learning-rate
    schedule) and the best-validation generator in state_dir every epoch, resume, and a restart
    from trained weights."""
    state_dir = tmp_path / "state"
    shipped = sorted(p.name for p in (BUNDLE / "models").iterdir())
    args = [*train_args(tmp_path, truth_dataset, "train.yaml"), "--state_dir", str(state_dir),
            "--patch_size", "[32, 32, 32]", "--warmup_iterations", "100000000"]
    bundle_cli(*args)
    state = state_dir / "training_state_checkpoint_epoch=2.pt"
    checkpoint = torch.load(state, weights_only=True)
    assert {"generator", "critic", "g_optimizer", "d_optimizer", "lr_scheduler", "trainer"} <= set(checkpoint)
    assert checkpoint["trainer"]["iteration"] == 4 and checkpoint["lr_scheduler"]["last_epoch"] == 4
    assert (state_dir / "generator_best_val.pt").is_file()
    assert sorted(p.name for p in (BUNDLE / "models").iterdir()) == shipped

    resumed = bundle_cli(*args, "--max_epochs", "3", "--resume_from", str(state))
    assert f"Restored all variables from {state}" in resumed.stdout + resumed.stderr
    assert torch.load(state_dir / "training_state_checkpoint_epoch=3.pt", weights_only=True)["trainer"]["iteration"] == 6

    best = state_dir / "generator_best_val.pt"
    restarted = bundle_cli(*args[:-1], "0", "--state_dir", str(tmp_path / "gan"), "--init_from", str(best))
    assert f"Restored all variables from {best}" in restarted.stdout + restarted.stderr
    assert torch.load(tmp_path / "gan" / "training_state_checkpoint_epoch=2.pt", weights_only=True)["trainer"]["iteration"] == 4


def test_scans_on_the_training_voxel_sizes_run_on_their_own_grid():
    """metadata and inference.yaml state the same training voxel sizes (1.5-4 mm); inside them a
    scan is not resampled, outside them it runs at the nearest end of the range."""
    from volgan.bundle import bundle_predictor

    meta = json.loads((CONFIGS / "metadata.json").read_text())
    predictor = bundle_predictor(BUNDLE, device="$torch.device('cpu')")
    assert list(predictor.spacing_range) == meta["training_voxel_size_mm"]["range"] == [1.5, 4.0]
    assert predictor.enabled
    for spacing in ((2.0, 2.0, 2.0), (3.0, 3.0, 3.0), (1.5, 1.5, 4.0)):
        assert predictor.model_spacing(spacing) == spacing
    assert predictor.model_spacing((1.0, 1.0, 1.0)) == (1.5, 1.5, 1.5)
    assert predictor.model_spacing((2.0, 2.0, 5.0)) == (2.0, 2.0, 4.0)
