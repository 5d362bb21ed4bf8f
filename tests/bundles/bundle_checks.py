"""Checks every bundle passes, run through the real `python -m monai.bundle` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]


def held_out_crop() -> tuple[np.ndarray, np.ndarray]:
    """A 48x56x40 crop of pydeface's mean head (never used for training) and its affine."""
    import pydeface

    img = nib.load(Path(pydeface.__file__).parent / "data" / "mean_reg2mean.nii.gz")
    data = np.asarray(img.dataobj, dtype=np.float32)[64:112, 100:156, 120:160]
    affine = img.affine.copy()
    affine[:3, 3] = img.affine[:3, :3] @ np.array([64, 100, 120]) + img.affine[:3, 3]
    return data, affine


def bundle_cli(*args: str, cwd: Path = ROOT, timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monai.bundle", *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def verify_metadata(bundle: Path) -> None:
    """MONAI's ``verify_metadata`` against the local copy of the bundle schema (no download)."""
    bundle_cli("verify_metadata", "--meta_file", str(bundle / "configs" / "metadata.json"),
               "--filepath", str(ROOT / "bundles" / "meta_schema.json"))


def tiny_training_args(bundle: Path, tmp_path: Path, data: Path, configs: Sequence[str], *overrides: str) -> list[str]:
    """``monai.bundle run`` arguments for 2 epochs x 2 iterations of ``configs`` (overlays in order) on
    ``data``, writing into ``tmp_path``; ``overrides`` (e.g. a smaller validation ROI) come last."""
    files = [str(bundle / "configs" / c) for c in configs]
    return [
        "run", "--config_file", json.dumps(files) if len(files) > 1 else files[0],
        "--bundle_root", str(bundle), "--ckpt_dir", str(tmp_path / "models"), "--output_dir", str(tmp_path / "eval"),
        "--dataset_dir", str(data), "--max_epochs", "2", "--iterations_per_epoch", "2", "--val_interval", "1",
        "--batch_size", "2", *overrides,
    ]


def verify_net_in_out(bundle: Path) -> None:
    configs = bundle / "configs"
    bundle_cli("verify_net_in_out", "network_def", "--meta_file", str(configs / "metadata.json"),
               "--config_file", str(configs / "inference.yaml"), "--bundle_root", str(bundle), "--any", "16")


def ckpt_export_matches_eager(bundle: Path, eager: nn.Module, out: Path) -> None:
    """`ckpt_export` writes a TorchScript file that computes what the eager network computes."""
    configs = bundle / "configs"
    bundle_cli("ckpt_export", "network_def", "--filepath", str(out), "--ckpt_file", str(bundle / "models" / "model.pt"),
               "--meta_file", str(configs / "metadata.json"), "--config_file", str(configs / "inference.yaml"),
               "--bundle_root", str(bundle))
    scripted = torch.jit.load(str(out))
    eager.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    x = torch.rand(1, 1, 16, 16, 16)
    torch.testing.assert_close(scripted(x), eager.eval()(x))
