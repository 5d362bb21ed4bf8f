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

from tests.bundles.bundle_checks import ROOT, bundle_cli, ckpt_export_matches_eager, verify_net_in_out
from tests.conftest import phantom

BUNDLE = ROOT / "bundles" / "pet_lowdose_cgan"
CONFIGS = BUNDLE / "configs"
pytestmark = pytest.mark.slow


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


def train_args(tmp_path: Path, data: Path, *configs: str) -> list[str]:
    files = [str(CONFIGS / c) for c in configs]
    return [
        "run", "--config_file", json.dumps(files) if len(files) > 1 else files[0],
        "--bundle_root", str(BUNDLE), "--ckpt_dir", str(tmp_path / "models"), "--output_dir", str(tmp_path / "eval"),
        "--dataset_dir", str(data), "--max_epochs", "2", "--iterations_per_epoch", "2", "--warmup_iterations", "1",
        "--val_interval", "1", "--batch_size", "2", "--validate#roi_size", "[32, 32, 32]",
    ]


def test_train_resume_and_evaluate_through_the_cli(tmp_path, pair_dataset):
    bundle_cli(*train_args(tmp_path, pair_dataset, "train.yaml"))
    models = tmp_path / "models"
    assert (models / "model.pt").is_file()
    state = models / "training_state_checkpoint_epoch=2.pt"
    checkpoint = torch.load(state, weights_only=True)
    assert {"generator", "critic", "g_optimizer", "d_optimizer", "trainer"} <= set(checkpoint)
    assert checkpoint["trainer"]["iteration"] == 4

    resumed = bundle_cli(*train_args(tmp_path, pair_dataset, "train.yaml"), "--max_epochs", "3", "--resume_from", str(state))
    assert f"Restored all variables from {state}" in resumed.stdout + resumed.stderr
    assert torch.load(models / "training_state_checkpoint_epoch=3.pt", weights_only=True)["trainer"]["iteration"] == 6

    bundle_cli(*train_args(tmp_path, pair_dataset, "train.yaml", "evaluate.yaml"))
    metrics = (tmp_path / "eval" / "metrics.csv").read_text()
    assert "val_psnr" in metrics and "val_ssim" in metrics


def test_a_bad_manifest_stops_training_before_it_starts_and_names_the_problem(tmp_path, pair_dataset):
    (pair_dataset / "train" / "s2_full.nii.gz").unlink()
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", *train_args(tmp_path, pair_dataset, "train.yaml")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0
    assert "s2_full.nii.gz" in proc.stdout + proc.stderr
    assert not (tmp_path / "models" / "model.pt").exists()


def test_multi_gpu_overlay_under_torchrun_with_gloo(tmp_path, pair_dataset):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    files = json.dumps([str(CONFIGS / "train.yaml"), str(CONFIGS / "multi_gpu_train.yaml")])
    args = train_args(tmp_path, pair_dataset, "train.yaml")
    args[2] = files
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
           "-m", "monai.bundle", *args, "--max_epochs", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "models" / "model.pt").is_file()
