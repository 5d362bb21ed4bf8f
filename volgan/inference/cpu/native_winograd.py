"""A 3x3x3 convolution on channels-last volumes: Winograd F(4, 3) along depth, fused C passes.

The layer reads a channel range of a channels-last volume ``(B, D, H, W, C)`` and writes a
channel range of another, so networks can keep concatenations in preallocated buffers. One C
pass applies an optional prologue (per-channel affine map and ELU: a pre-activation unit) and the
Winograd input transform (:mod:`volgan.inference.cpu.winograd`); six channels-last 3x3 2D
convolutions run in PyTorch (oneDNN); one C pass applies the output transform and the epilogue
``leaky_relu(scale * (conv + residual) + shift)`` (the bias and a following BatchNorm folded into
``scale`` and ``shift``) and writes the result. Each pass reads and writes memory once, where an
unfused graph makes a pass per element-wise operation.
"""

from __future__ import annotations

import copy
import ctypes
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from volgan.inference.cpu.native_kernels import run_jobs
from volgan.inference.cpu.winograd import TILE, is_plain_3x3x3, transformed_kernels


@dataclass
class Prologue:
    """``ELU(scale * x + shift, alpha)`` per input channel, before the convolution."""

    scale: torch.Tensor
    shift: torch.Tensor
    alpha: float


def _pointer(tensor: torch.Tensor, offset: int = 0) -> int:
    return tensor.data_ptr() + offset * tensor.element_size()


class WinogradLayer:
    """``conv`` (a plain 3x3x3 convolution) with an optional prologue and a fused epilogue.

    Args:
        conv: the convolution (its weights are copied).
        prologue: optional pre-activation of the input channels.
        scale, shift: per-output-channel affine map after the convolution and the residual
            (default: identity); the convolution's bias is folded in.
        slope: leaky ReLU slope of the epilogue (1: none, 0: ReLU).
    """

    def __init__(self, conv: nn.Conv3d, prologue: Prologue | None = None, scale: torch.Tensor | None = None,
                 shift: torch.Tensor | None = None, slope: float = 1.0):
        if not is_plain_3x3x3(conv):
            raise ValueError(f"not a 3x3x3 stride-1 zero-padded convolution: {conv}")
        conv = copy.deepcopy(conv).float().cpu()
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernels = [k.contiguous(memory_format=torch.channels_last) for k in transformed_kernels(conv)]
        ones, zeros = torch.ones(self.out_channels), torch.zeros(self.out_channels)
        scale = ones if scale is None else scale.float().cpu()
        bias = zeros if conv.bias is None else conv.bias.detach()
        self.scale = scale.contiguous()
        self.shift = (scale * bias + (zeros if shift is None else shift.float().cpu())).contiguous()
        self.slope = float(slope)
        self.prologue = prologue
        if prologue is not None and prologue.scale.numel() != self.in_channels:
            raise ValueError(f"prologue has {prologue.scale.numel()} channels, the convolution {self.in_channels}")

    def __call__(self, library: ctypes.CDLL, x: torch.Tensor, out: torch.Tensor, out_offset: int = 0,
                 residual: torch.Tensor | None = None) -> None:
        """Read channels ``[0, in_channels)`` of ``x`` and write ``[out_offset, out_offset + out_channels)``
        of ``out``; both (and ``residual``, channels ``[0, out_channels)`` read) are contiguous
        ``(B, D, H, W, C)`` float32 CPU tensors of the same grid."""
        batch, depth, height, width, stride = x.shape
        plane, tiles = height * width, (depth + TILE - 1) // TILE
        if out.shape[:4] != x.shape[:4] or (residual is not None and residual.shape[:4] != x.shape[:4]):
            raise ValueError("input, output and residual must share the grid")
        pro = self.prologue
        elu_args = (1, pro.scale.data_ptr(), pro.shift.data_ptr(), pro.alpha) if pro is not None else (0, None, None, 0.0)
        d = torch.empty(6, batch * tiles, height, width, self.in_channels)
        run_jobs(library.winograd_input, (x.data_ptr(), stride, d.data_ptr(), *elu_args, batch, depth, plane,
                                          self.in_channels, tiles), batch * tiles)
        m = []
        for i in range(6):
            mi = F.conv2d(d[i].permute(0, 3, 1, 2), self.kernels[i], padding=1)
            m.append(mi.contiguous(memory_format=torch.channels_last))  # a no-op for oneDNN's output
        del d
        pointers = (ctypes.c_void_p * 6)(*(mi.data_ptr() for mi in m))
        res = (None, 0) if residual is None else (residual.data_ptr(), residual.shape[-1])
        run_jobs(library.winograd_output, (pointers, _pointer(out, out_offset), out.shape[-1], *res,
                                           self.scale.data_ptr(), self.shift.data_ptr(), self.slope,
                                           batch, depth, plane, self.out_channels, tiles), batch * tiles)
