"""Eval-mode BatchNorm as a per-channel affine map, for the CPU forms that apply it in their own passes."""

from __future__ import annotations

import torch
from torch import nn


def batchnorm_affine(norm: nn.BatchNorm3d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``(scale, shift)``: ``norm(x) = scale * x + shift`` per channel."""
    weight = norm.weight.detach() if norm.weight is not None else torch.ones_like(norm.running_var)
    scale = weight / torch.sqrt(norm.running_var + norm.eps)
    shift = (norm.bias.detach() if norm.bias is not None else 0) - norm.running_mean * scale
    return scale.float().cpu().contiguous(), shift.float().cpu().contiguous()


def is_eval_batchnorm(module: nn.Module) -> bool:
    """A ``BatchNorm3d`` in eval mode with running statistics: a fixed affine map."""
    return (isinstance(module, nn.BatchNorm3d) and not module.training and module.track_running_stats
            and module.running_mean is not None)
