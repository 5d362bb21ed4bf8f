"""Eval-mode BatchNorm as the per-channel affine map the CPU forms apply in their own passes."""

from __future__ import annotations

import torch
from torch import nn

from tests.conftest import randomised
from volgan.inference.cpu.batchnorm import batchnorm_affine, is_eval_batchnorm


def test_the_affine_map_is_the_eval_mode_batchnorm():
    for affine in (True, False):
        norm = nn.BatchNorm3d(5, affine=affine, eps=1e-3)
        randomised(nn.Sequential(norm))
        norm.eval()
        x = torch.randn(2, 5, 3, 4, 6)
        scale, shift = batchnorm_affine(norm)
        assert scale.shape == shift.shape == (5,) and scale.dtype == torch.float32
        with torch.no_grad():
            torch.testing.assert_close(scale.view(1, 5, 1, 1, 1) * x + shift.view(1, 5, 1, 1, 1), norm(x))


def test_only_a_3d_batchnorm_with_running_statistics_in_eval_mode_is_fixed():
    assert is_eval_batchnorm(nn.BatchNorm3d(4).eval())
    assert not is_eval_batchnorm(nn.BatchNorm3d(4))  # training mode: batch statistics
    assert not is_eval_batchnorm(nn.BatchNorm3d(4, track_running_stats=False).eval())
    assert not is_eval_batchnorm(nn.BatchNorm2d(4).eval())
    assert not is_eval_batchnorm(nn.InstanceNorm3d(4).eval())
