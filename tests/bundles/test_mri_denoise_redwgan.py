"""The RED-WGAN bundle through the real MONAI bundle CLI (and torchrun): training on synthetic subjects
(train.yaml) and on real NIfTI files (train.yaml + train_files.yaml), inference and evaluation."""

from __future__ import annotations

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
    held_out_crop,
    tiny_training_args,
    verify_metadata,
    verify_net_in_out,
)
from tests.conftest import oblique_affine, phantom
from volgan.degrade import add_rician_noise
from volgan.metrics import psnr

BUNDLE = ROOT / "bundles" / "mri_denoise_redwgan"
CONFIGS = BUNDLE / "configs"
# training on files: the overlay on the synthetic default
FILES = ("train.yaml", "train_files.yaml")
pytestmark = pytest.mark.slow


def test_inference_denoises_every_file_on_its_grid_in_its_units(tmp_path):
    clean, affine = held_out_crop()
    noisy = add_rician_noise(clean, 9.0, seed=5)
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(noisy, affine), tmp_path / "in" / "head.nii.gz")
    scaled = (noisy * 7.3).astype(np.int16)  # other units and dtype, oblique grid
    nib.save(nib.Nifti1Image(scaled, oblique_affine()), tmp_path / "in" / "other.nii")
    bundle_cli("run", "--config_file", str(CONFIGS / "inference.yaml"), "--bundle_root", str(BUNDLE),
               "--dataset_dir", str(tmp_path / "in"), "--output_dir", str(tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["head.nii.gz", "other.nii.gz", "volgan_report.csv", "volgan_report.json"]
    head = nib.load(tmp_path / "out" / "head.nii.gz")
    np.testing.assert_allclose(head.affine, affine, atol=1e-4)
    denoised = head.get_fdata()
    peak = float(clean.max())
    assert psnr(denoised, clean, data_range=peak) > psnr(noisy, clean, data_range=peak) + 3.0
    other = nib.load(tmp_path / "out" / "other.nii.gz")
    assert other.shape == scaled.shape
    np.testing.assert_allclose(other.affine, oblique_affine(), atol=1e-4)
    assert other.get_fdata().mean() == pytest.approx(denoised.mean() * 7.3, rel=0.05)


def test_verify_metadata_with_local_schema():
    verify_metadata(BUNDLE)


def test_verify_metadata_rejects_incomplete_metadata(tmp_path):
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    del meta["network_data_format"]["outputs"]["pred"]["dtype"]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file",
                           str(tmp_path / "metadata.json"), "--filepath", str(ROOT / "bundles" / "meta_schema.json")],
                          capture_output=True, encoding="utf-8", errors="replace", cwd=ROOT)
    assert proc.returncode != 0 and "dtype" in proc.stdout + proc.stderr


def test_verify_net_in_out():
    verify_net_in_out(BUNDLE)


def test_ckpt_export_gives_an_equivalent_torchscript(tmp_path):
    from volgan.networks import RedWganGenerator

    ckpt_export_matches_eager(BUNDLE, RedWganGenerator("small"), tmp_path / "model.ts")


@pytest.fixture
def tiny_dataset(tmp_path):
    data = tmp_path / "data"
    for split, seeds in (("train", (1, 2)), ("val", (3,))):
        (data / split).mkdir(parents=True)
        for s in seeds:
            nib.save(nib.Nifti1Image(phantom((40, 40, 24), seed=s) * 3, np.eye(4)), data / split / f"vol{s}.nii.gz")
    return data


def train_args(tmp_path: Path, data: Path, *configs: str) -> list[str]:
    return tiny_training_args(BUNDLE, tmp_path, data, configs, "--warmup_iterations", "2",
                              "--validate#preprocessing#transforms#3#roi_size", "[32, 32, 16]")


@pytest.fixture
def anatomy(tmp_path) -> Path:
    from tests.data.test_synth import sphere_anatomy

    path = tmp_path / "anatomy.npz"
    sphere_anatomy(40).save(path)
    return path


def synth_args(anatomy: Path, state_dir: Path, *configs: str) -> list[str]:
    """``monai.bundle run`` arguments for train.yaml (and overlays) on tiny synthetic draws, the state in state_dir."""
    files = json.dumps([str(CONFIGS / c) for c in ("train.yaml", *configs)])
    return ["run", "--config_file", files, "--bundle_root", str(BUNDLE), "--synth_anatomy", str(anatomy),
            "--state_dir", str(state_dir), "--patch_size", "[16, 16, 16]", "--batch_size", "2",
            "--iterations_per_epoch", "2", "--val_interval", "1", "--validate#source#shape", "[16, 16, 16]",
            "--validate#dataset#length", "2"]


def test_train_on_files_resume_and_evaluate_through_the_cli(tmp_path, tiny_dataset):
    """train.yaml + train_files.yaml: clean volumes from dataset_dir, model.pt and the state in ckpt_dir."""
    bundle_cli(*train_args(tmp_path, tiny_dataset, *FILES))
    models = tmp_path / "models"
    assert (models / "model.pt").is_file()
    state = models / "training_state_checkpoint_epoch=2.pt"
    assert state.is_file()
    checkpoint = torch.load(state, weights_only=True)
    assert {"generator", "critic", "g_optimizer", "d_optimizer", "trainer"} <= set(checkpoint)
    assert checkpoint["trainer"]["iteration"] == 4

    resumed = bundle_cli(*train_args(tmp_path, tiny_dataset, *FILES), "--max_epochs", "3", "--resume_from", str(state))
    assert f"Restored all variables from {state}" in resumed.stdout + resumed.stderr
    assert torch.load(models / "training_state_checkpoint_epoch=3.pt", weights_only=True)["trainer"]["iteration"] == 6

    bundle_cli(*train_args(tmp_path, tiny_dataset, *FILES, "evaluate.yaml"))
    metrics = (tmp_path / "eval" / "metrics.csv").read_text()
    assert "val_psnr" in metrics and "val_ssim" in metrics


def test_evaluate_on_a_pairs_manifest_through_the_paired_loader(tmp_path):
    """Real noisy/clean pairs: one on the clean grid, one a crop on another grid in the same world."""
    clean = phantom((40, 40, 24), seed=4) * 3
    noisy = add_rician_noise(clean, 7.0, seed=2)
    nib.save(nib.Nifti1Image(clean, np.eye(4)), tmp_path / "clean.nii.gz")
    nib.save(nib.Nifti1Image(noisy, np.eye(4)), tmp_path / "noisy.nii.gz")
    crop = np.eye(4)
    crop[:3, 3] = (2, 3, 1)
    nib.save(nib.Nifti1Image(noisy[2:38, 3:37, 1:23], crop), tmp_path / "noisy_crop.nii.gz")
    (tmp_path / "pairs.csv").write_text("subject,source,target\nwhole,noisy.nii.gz,clean.nii.gz\n"
                                        "crop,noisy_crop.nii.gz,clean.nii.gz\n")
    configs = json.dumps([str(CONFIGS / c) for c in (*FILES, "evaluate.yaml", "evaluate_pairs.yaml")])
    bundle_cli("run", "--config_file", configs, "--bundle_root", str(BUNDLE), "--output_dir", str(tmp_path / "eval"),
               "--eval_manifest", str(tmp_path / "pairs.csv"))
    rows = (tmp_path / "eval" / "val_psnr_raw.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + one row per pair
    psnr_values = [float(r.split(",")[1]) for r in rows[1:]]
    assert all(20 < v < 60 for v in psnr_values), rows


def test_torchrun_two_processes_with_gloo_on_synthetic_subjects(tmp_path, anatomy):
    """train.yaml + multi_gpu_train.yaml: rank 0 writes the state and the best validation generator."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
           "-m", "monai.bundle", *synth_args(anatomy, tmp_path / "state", "multi_gpu_train.yaml"), "--max_epochs", "2"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, encoding="utf-8", errors="replace", timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    state = torch.load(tmp_path / "state" / "training_state_checkpoint_epoch=2.pt", weights_only=True)
    assert state["trainer"]["iteration"] == 4 and state["lr_scheduler"]["last_epoch"] == 4
    assert (tmp_path / "state" / "generator_best_val.pt").is_file()


def test_mlflow_tracking_through_the_cli(tmp_path, tiny_dataset):
    bundle_cli(*train_args(tmp_path, tiny_dataset, *FILES), "--tracking", "mlflow")
    import mlflow

    db = tmp_path / "eval" / "mlruns.db"
    assert db.is_file()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("monai_experiment")
    runs = client.search_runs([experiment.experiment_id])
    logged = {key for run in runs for key in run.data.metrics}
    assert "train_loss" in logged and "val_psnr" in logged


def test_train_yaml_alone_trains_on_synthetic_subjects_outside_the_bundle_resumes_and_restarts(tmp_path, anatomy):
    """train.yaml alone (no data folder): fresh synthetic subjects each epoch, the full state in
    state_dir every epoch, the best validation generator, resume from the state, and a restart from
    shipped weights with fresh optimisers."""
    from volgan.networks import RedWganGenerator

    def run(state_dir: Path, *extra: str):
        return bundle_cli(*synth_args(anatomy, state_dir), *extra)

    before = sorted(p.name for p in (BUNDLE / "models").iterdir())
    run(tmp_path / "state", "--max_epochs", "2")
    state = tmp_path / "state" / "training_state_checkpoint_epoch=2.pt"
    checkpoint = torch.load(state, weights_only=True)
    assert {"generator", "critic", "g_optimizer", "d_optimizer", "lr_scheduler", "trainer"} <= set(checkpoint)
    assert checkpoint["trainer"]["iteration"] == 4
    assert checkpoint["lr_scheduler"]["last_epoch"] == 4
    best = torch.load(tmp_path / "state" / "generator_best_val.pt", weights_only=True)
    assert set(best) == set(RedWganGenerator("small").state_dict())
    assert sorted(p.name for p in (BUNDLE / "models").iterdir()) == before, "training must not write into the bundle"

    resumed = run(tmp_path / "state", "--max_epochs", "3", "--resume_from", str(state))
    assert f"Restored all variables from {state}" in resumed.stdout + resumed.stderr
    assert torch.load(tmp_path / "state" / "training_state_checkpoint_epoch=3.pt",
                      weights_only=True)["trainer"]["iteration"] == 6

    weights = tmp_path / "weights.pt"
    torch.save(best, weights)
    restarted = run(tmp_path / "state2", "--max_epochs", "1", "--init_from", str(weights))
    assert f"Restored all variables from {weights}" in restarted.stdout + restarted.stderr
    fresh = torch.load(tmp_path / "state2" / "training_state_checkpoint_epoch=1.pt", weights_only=True)
    assert fresh["trainer"]["iteration"] == 2


def test_inference_normalisation_puts_noisy_heads_inside_the_training_intensity_range(tmp_path):
    """The synthetic training pairs have their brightest tissue at about 1, times 1 +- scale_jitter, at
    every noise level; the predictor divides a whole noisy volume by its own normaliser's scale. For the
    two to agree, that scale must stay within the jitter range at every level training covers
    (Rician noise lifts the high percentile as the level grows)."""
    from monai.bundle import ConfigParser

    from tests.data.test_synth import sphere_anatomy
    from volgan.data.synth import SynthMRGenerator

    anatomy = sphere_anatomy(40)
    anatomy.save(tmp_path / "anatomy.npz")
    train = ConfigParser()
    train.read_config(str(CONFIGS / "train.yaml"))
    train["synth_anatomy"] = str(tmp_path / "anatomy.npz")
    dataset = train.get_parsed_content("train#dataset")
    infer = ConfigParser()
    infer.read_config(str(CONFIGS / "inference.yaml"))
    infer["bundle_root"] = str(BUNDLE)
    infer["device"] = "$torch.device('cpu')"
    normaliser = infer.get_parsed_content("network_predictor").normaliser
    low, high = 1 / (1 + dataset.scale_jitter), 1 / (1 - dataset.scale_jitter)
    heads = SynthMRGenerator(anatomy, shape=(40, 40, 40), centre=(19.5, 19.5, 19.5), spacing_range=(1.0, 1.0),
                             thick_slice_probability=0.0)
    for seed in range(6):
        clean = heads.draw(np.random.default_rng(seed)).image
        for level in (dataset.levels[0], sum(dataset.levels) / 2, dataset.levels[1]):
            scale = normaliser.fit(add_rician_noise(clean, level, seed=seed, peak=1.0)).scale
            assert low < scale < high, f"subject {seed}, {level:.1f} %: scale {scale:.3f} outside ({low:.3f}, {high:.3f})"
