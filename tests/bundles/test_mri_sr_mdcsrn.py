"""The mDCSRN super-resolution bundle through the real MONAI bundle CLI, on real NIfTI files."""

from __future__ import annotations

import json
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
from volgan.data.target_grid import resample_to_target
from volgan.degrade import thick_slices, truncate_kspace
from volgan.io import Volume
from volgan.metrics import psnr

BUNDLE = ROOT / "bundles" / "mri_sr_mdcsrn"
CONFIGS = BUNDLE / "configs"
# training on files: the overlay on the synthetic default
FILES = ("train.yaml", "train_files.yaml")
pytestmark = pytest.mark.slow


def run_inference(tmp_path: Path, out_name: str, *overrides: str) -> Path:
    out = tmp_path / out_name
    bundle_cli("run", "--config_file", str(CONFIGS / "inference.yaml"), "--bundle_root", str(BUNDLE),
               "--dataset_dir", str(tmp_path / "in"), "--output_dir", str(out), *overrides)
    return out


def test_thick_slices_are_super_resolved_onto_the_thin_grid(tmp_path):
    clean, affine = held_out_crop()
    thick = thick_slices(Volume(clean, affine), 4, axis=2)
    assert thick.shape == (48, 56, 10) and thick.spacing[2] == pytest.approx(3.906, abs=1e-3)
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(thick.array, thick.affine), tmp_path / "in" / "head.nii.gz")
    # a second input in other units and dtype, on an oblique 1 x 1 x 4 mm grid
    oblique = oblique_affine(spacing=(1.0, 1.0, 4.0))
    nib.save(nib.Nifti1Image((thick.array * 3.1).astype(np.int16), oblique), tmp_path / "in" / "other.nii")
    # the mean head's voxels are 1 x 0.977 x 0.977 mm: its thin grid is the target (default mode: thick)
    thin_spacing = json.dumps([float(v) for v in np.linalg.norm(affine[:3, :3], axis=0)])
    out = run_inference(tmp_path, "out", "--target_spacing", thin_spacing)
    assert sorted(p.name for p in out.iterdir()) == ["head.nii.gz", "other.nii.gz", "volgan_report.csv", "volgan_report.json"]
    head = nib.load(out / "head.nii.gz")
    assert head.shape == clean.shape  # each 4 mm slab tiled by four 1 mm voxels
    np.testing.assert_allclose(head.affine, affine, atol=1e-4)  # exactly the thin grid
    sr = head.get_fdata()
    cubic = resample_to_target(thick, json.loads(thin_spacing), "cubic").array
    fg = clean > 0.1 * clean.max()
    peak = float(clean.max())
    # the pipeline check: the refined volume is the anatomy on the right grid (no shift, flip or
    # scaling, which would cost far more than 1 dB). Whether the shipped weights beat cubic
    # interpolation is measured in the model card (they do not).
    assert psnr(sr, clean, data_range=peak, mask=fg) > psnr(cubic, clean, data_range=peak, mask=fg) - 1.0
    out = run_inference(tmp_path, "out_1mm")  # default target spacing: 1 mm, so each 4 mm slab -> four voxels
    other = nib.load(out / "other.nii.gz")
    assert other.shape == (48, 56, 40)
    first_centre = oblique @ np.array([0, 0, -0.5 + 1 / 8, 1.0])  # 0.5 mm inside the first slab's edge
    np.testing.assert_allclose(other.affine[:3, 3], first_centre[:3], atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(other.affine[:3, :3], axis=0), 1.0, atol=1e-5)
    head_1mm = nib.load(out / "head.nii.gz")
    assert head_1mm.shape == (48, 55, 39)  # 1 x 0.977 x 3.906 mm voxels onto 1 mm: round(extent / 1 mm)
    assert other.get_fdata().mean() == pytest.approx(sr.mean() * 3.1, rel=0.05)


def test_kspace_mode_keeps_the_grid(tmp_path):
    clean, affine = held_out_crop()
    truncated = truncate_kspace(clean, 0.5, axes=(0, 1))
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(truncated, affine), tmp_path / "in" / "head.nii.gz")
    out = run_inference(tmp_path, "out", "--mode", "kspace")
    img = nib.load(out / "head.nii.gz")
    assert img.shape == clean.shape
    np.testing.assert_allclose(img.affine, affine, atol=1e-4)
    fg = clean > 0.1 * clean.max()
    peak = float(clean.max())
    before = psnr(truncated, clean, data_range=peak, mask=fg)
    assert psnr(img.get_fdata(), clean, data_range=peak, mask=fg) > before - 1.0


def test_unknown_mode_fails(tmp_path):
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(phantom((16, 16, 4)), np.diag([1, 1, 4, 1.0])), tmp_path / "in" / "a.nii.gz")
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run",
                           "--config_file", str(CONFIGS / "inference.yaml"),
                           "--bundle_root", str(BUNDLE), "--dataset_dir", str(tmp_path / "in"),
                           "--output_dir", str(tmp_path / "out"), "--mode", "bicubic"],
                          cwd=ROOT, capture_output=True, encoding="utf-8", errors="replace", timeout=600)
    assert proc.returncode != 0 and "bicubic" in proc.stdout + proc.stderr


def test_verify_metadata_with_local_schema():
    verify_metadata(BUNDLE)


def test_verify_net_in_out():
    verify_net_in_out(BUNDLE)


def test_ckpt_export_gives_an_equivalent_torchscript(tmp_path):
    from volgan.networks import MdcsrnGenerator

    ckpt_export_matches_eager(BUNDLE, MdcsrnGenerator("small"), tmp_path / "model.ts")


@pytest.fixture
def tiny_dataset(tmp_path):
    """The layout of data_scripts/make_sr_data.py: {split}/clean and {split}/{kspace,thick4_cubic}."""
    data = tmp_path / "data"
    for split, seeds in (("train", (1, 2)), ("val", (3,))):
        for s in seeds:
            clean = Volume(phantom((40, 40, 32), seed=s) * 3, np.eye(4))
            thick = thick_slices(clean, 4, axis=2)
            degraded = {"clean": clean.array, "kspace": truncate_kspace(clean.array, 0.5, (0, 1)),
                        "thick4_cubic": resample_to_target(thick, 1.0, "cubic").array}
            for kind, array in degraded.items():
                (data / split / kind).mkdir(parents=True, exist_ok=True)
                nib.save(nib.Nifti1Image(array, np.eye(4)), data / split / kind / f"vol{s}.nii.gz")
    return data


def train_args(tmp_path: Path, data: Path, *configs: str) -> list[str]:
    return tiny_training_args(BUNDLE, tmp_path, data, configs, "--warmup_iterations", "2",
                              "--validate#preprocessing#transforms#3#roi_size", "[32, 32, 32]",
                              "--validate#roi_size", "[32, 32, 32]")


def test_files_l1_pretraining_then_wgan_then_evaluate_through_the_cli(tmp_path, tiny_dataset):
    """train.yaml + train_files.yaml: pairs from dataset_dir, model.pt and the state in ckpt_dir."""
    bundle_cli(*train_args(tmp_path, tiny_dataset, *FILES))
    models = tmp_path / "models"
    assert (models / "model.pt").is_file()
    state = torch.load(models / "training_state_checkpoint_epoch=2.pt", weights_only=True)
    assert {"generator", "critic", "g_optimizer", "d_optimizer", "trainer"} <= set(state)
    assert state["trainer"]["iteration"] == 4
    # iterations 3-4 are adversarial, with the generator's learning rate dropped to gan_learning_rate
    assert state["g_optimizer"]["param_groups"][0]["lr"] == pytest.approx(5e-6)
    assert (tmp_path / "eval" / "generator_generator_epoch=1.pt").is_file()

    bundle_cli(*train_args(tmp_path, tiny_dataset, *FILES, "evaluate.yaml"))
    metrics = (tmp_path / "eval" / "metrics.csv").read_text()
    assert "val_psnr" in metrics and "val_ssim" in metrics


def test_torchrun_two_processes_with_gloo_on_files(tmp_path, tiny_dataset):
    """train.yaml + train_files.yaml + multi_gpu_train.yaml: rank 0 writes the weights and the state."""
    import os

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
           "-m", "monai.bundle", *train_args(tmp_path, tiny_dataset, *FILES, "multi_gpu_train.yaml")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, encoding="utf-8", errors="replace", timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert (tmp_path / "models" / "model.pt").is_file()
    state = torch.load(tmp_path / "models" / "training_state_checkpoint_epoch=2.pt", weights_only=True)
    assert state["trainer"]["iteration"] == 4
    assert state["g_optimizer"]["param_groups"][0]["lr"] == pytest.approx(5e-6)


def test_train_yaml_alone_trains_on_synthetic_pairs_and_saves_state_outside_the_bundle(tmp_path):
    """train.yaml alone (no data folder): fresh synthetic SR pairs each epoch, the full state and the
    best validation generator in state_dir, nothing written into the bundle, resumable."""
    from tests.data.test_synth import sphere_anatomy
    from volgan.networks import MdcsrnGenerator

    anatomy = tmp_path / "anatomy.npz"
    sphere_anatomy(40).save(anatomy)

    def run(*extra: str):
        return bundle_cli("run", "--config_file", str(CONFIGS / "train.yaml"), "--bundle_root", str(BUNDLE),
                          "--synth_anatomy", str(anatomy), "--state_dir", str(tmp_path / "state"), "--patch_size", "[16, 16, 16]",
                          "--draw_size", "[26, 26, 26]", "--batch_size", "2", "--iterations_per_epoch", "2",
                          "--val_interval", "1", "--validate#source#shape", "[26, 26, 26]",
                          "--validate#dataset#patch_size", "[16, 16, 16]", "--validate#dataset#length", "2", *extra)

    before = sorted(p.name for p in (BUNDLE / "models").iterdir())
    run("--max_epochs", "2")
    state = tmp_path / "state" / "training_state_checkpoint_epoch=2.pt"
    checkpoint = torch.load(state, weights_only=True)
    assert {"generator", "critic", "g_optimizer", "d_optimizer", "lr_scheduler", "trainer"} <= set(checkpoint)
    assert checkpoint["trainer"]["iteration"] == 4
    best = torch.load(tmp_path / "state" / "generator_best_val.pt", weights_only=True)
    assert set(best) == set(MdcsrnGenerator(preset="small").state_dict())
    assert sorted(p.name for p in (BUNDLE / "models").iterdir()) == before, "training must not write into the bundle"
    resumed = run("--max_epochs", "3", "--resume_from", str(state))
    assert f"Restored all variables from {state}" in resumed.stdout + resumed.stderr
    assert torch.load(tmp_path / "state" / "training_state_checkpoint_epoch=3.pt",
                      weights_only=True)["trainer"]["iteration"] == 6
