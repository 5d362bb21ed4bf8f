"""Shared fixtures: tiny synthetic volumes written to real NIfTI files in a temporary folder."""

from __future__ import annotations

import os
import subprocess

import nibabel as nib
import numpy as np
import pytest


def phantom(shape=(20, 24, 18), seed: int = 0) -> np.ndarray:
    """A smooth blob with two inner structures, values 0..~100, plus a little texture."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    r = np.sqrt((grid**2).sum(0))
    vol = 80.0 * (r < 0.8) + 20.0 * (np.abs(grid[0]) < 0.25) * (r < 0.6)
    return (vol + rng.normal(0, 0.5, shape) * (r < 0.8)).clip(0).astype(np.float32)


def randomised(net):
    """``net`` in eval mode with non-trivial weights and BatchNorm statistics (seeded)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    for p in net.parameters():
        nn.init.normal_(p, std=0.1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def oblique_affine(spacing=(1.2, 0.9, 2.5)) -> np.ndarray:
    angle = np.deg2rad(10)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(spacing)
    affine[:3, 3] = (-12.5, 30.0, 7.25)
    return affine


@pytest.fixture
def nifti_file(tmp_path):
    """Write a phantom as int16 NIfTI with an oblique affine; returns (path, array, affine)."""
    arr = phantom()
    affine = oblique_affine()
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(arr.round().astype(np.int16), affine), path)
    return path, arr.round(), affine


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody can write to: a read-only tmpfs mount for root (who ignores permission
    bits), a chmod 555 folder for other users."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture(scope="session")
def brain_case(tmp_path_factory):
    """A real-anatomy cross-contrast pair with known geometry (see data_scripts/make_pair_data.py)."""
    from tests.brain_case import make_brain_case

    return make_brain_case(tmp_path_factory.mktemp("brain_case"))
