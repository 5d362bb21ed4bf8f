"""An eval-mode BatchNorm and the ELU after it as one C pass, for mDCSRN's pre-activation units.

mDCSRN's dense units are BatchNorm -> ELU -> convolution, and the convolution's input is the
whole running concatenation of its block, so these element-wise layers touch far more data than
the convolutions write, and PyTorch's CPU ELU does not vectorise its ``expm1``. :class:`AffineELU` computes ``ELU(scale * x + shift)`` in one
vectorised pass (``kernels/affine_elu.c``: float32 arithmetic, a branch-free ``exp``, bfloat16
rounded once), and :func:`fuse_norm_elu` puts it in place of each BatchNorm -> ELU pair.
"""

from __future__ import annotations

import collections
import math

import torch
from torch import nn

from volgan.inference.cpu.batchnorm import batchnorm_affine, is_eval_batchnorm
from volgan.inference.cpu.native_kernels import load_library, run_jobs
from volgan.inference.optimise import rewritten, traced_copy

# voxels per chunk of the C pass: the per-channel scale and shift are repeated for this many
# voxels, so that a chunk is a whole number of 16-float vectors for any channel count
CHUNK_VOXELS = 16
KERNELS = {torch.float32: "affine_elu_f32", torch.bfloat16: "affine_elu_bf16"}


class AffineELU(nn.Module):
    """``ELU(scale * x + shift, alpha)`` per channel: an eval-mode BatchNorm and an ELU.

    Runs volgan's C pass for float32 and bfloat16 CPU tensors when the kernels build (its output
    is channels-last 3D; its input may be a channel range of a channels-last buffer, read in
    place), else the same formula in PyTorch.
    """

    def __init__(self, norm: nn.BatchNorm3d, alpha: float = 1.0):
        super().__init__()
        scale, shift = batchnorm_affine(norm)
        self.alpha, self.channels = float(alpha), int(scale.numel())
        self.register_buffer("scale", scale.float().contiguous())
        self.register_buffer("shift", shift.float().contiguous())
        self.register_buffer("scale_chunk", self.scale.repeat(CHUNK_VOXELS), persistent=False)
        self.register_buffer("shift_chunk", self.shift.repeat(CHUNK_VOXELS), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = KERNELS.get(x.dtype)
        library = load_library() if kernel is not None and x.device.type == "cpu" and x.ndim == 5 else None
        if library is None or x.requires_grad or x.shape[1] != self.channels:
            view = (1, -1) + (1,) * (x.ndim - 2)
            return nn.functional.elu(x * self.scale.to(x.dtype).view(view) + self.shift.to(x.dtype).view(view), self.alpha)
        pitch = voxel_pitch(x)
        if pitch is None:
            x = x.contiguous(memory_format=torch.channels_last_3d)
            pitch = self.channels
        y = torch.empty(x.shape, dtype=x.dtype, memory_format=torch.channels_last_3d)
        voxels = y.numel() // self.channels
        args = (x.data_ptr(), y.data_ptr(), self.scale_chunk.data_ptr(), self.shift_chunk.data_ptr(), self.alpha,
                self.channels, pitch, CHUNK_VOXELS, voxels)
        run_jobs(getattr(library, kernel), args, math.ceil(voxels / CHUNK_VOXELS))
        return y

    def extra_repr(self) -> str:
        return f"{self.channels}, alpha={self.alpha}"


def voxel_pitch(x: torch.Tensor) -> int | None:
    """The distance between consecutive voxels of a 5-D tensor whose voxels are laid out as in a
    channels-last tensor, each holding its channels contiguously (a dense channels-last tensor, or
    a channel range of a larger one); None for any other layout."""
    b, c, d, h, w = x.shape
    # the stride of a size-1 axis is arbitrary: the pitch comes from the innermost longer one
    pitch = x.stride(4) if w > 1 else x.stride(3) if h > 1 else x.stride(2) if d > 1 else c
    expected = (pitch * w * h * d, 1, pitch * w * h, pitch * w, pitch)
    if pitch < c or any(n > 1 and s != e for n, s, e in zip(x.shape, x.stride(), expected)):
        return None
    return pitch


def fuse_norm_elu(network: nn.Module) -> nn.Module:
    """A copy of ``network`` where each eval-mode BatchNorm3d whose only user is an ``nn.ELU`` is,
    with that ELU, one :class:`AffineELU`; ``network`` itself when there is none or it cannot be
    traced. The same function up to float32 rounding."""
    if not any(type(m) is nn.ELU for m in network.modules()):
        return network  # (no trace needed)
    graph = traced_copy(network, "BatchNorm + ELU fusion")
    if graph is None:
        return network
    modules = dict(graph.named_modules())
    calls = collections.Counter(n.target for n in graph.graph.nodes if n.op == "call_module")
    fused = 0
    for node in list(graph.graph.nodes):
        if (node.op != "call_module" or not is_eval_batchnorm(modules[node.target]) or calls[node.target] != 1
                or len(node.args) != 1 or node.kwargs or len(node.users) != 1):
            continue
        elu = next(iter(node.users))
        if elu.op != "call_module" or type(modules[elu.target]) is not nn.ELU or elu.args[0] is not node:
            continue
        graph.add_submodule(node.target, AffineELU(modules[node.target], modules[elu.target].alpha))
        with graph.graph.inserting_before(elu):
            replacement = graph.graph.call_module(node.target, (node.args[0],))
        elu.replace_all_uses_with(replacement)
        graph.graph.erase_node(elu)
        graph.graph.erase_node(node)
        fused += 1
    return rewritten(graph, network, fused)
