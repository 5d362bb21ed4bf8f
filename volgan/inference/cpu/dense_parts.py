"""A dense block's running concatenation kept as separate parts, for fast mode on the CPU.

Writing each unit's few new channels into a shared channels-last buffer of the whole block
(mDCSRN: 8 channels of 48) touches every cache line of that buffer. So the block keeps
its input and each unit's output as parts (:class:`Part`; a depth-paired convolution's output
stays as it was written), each unit's BatchNorm + ELU reads the parts it needs
(:func:`affine_elu_parts`, one C pass), and the block's output is gathered from all of them once
(:func:`gather_parts`). Kernels: ``kernels/dense_parts.c``.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass

import torch

from volgan.inference.cpu.native_kernels import load_library, run_jobs
from volgan.inference.cpu.norm_elu import CHUNK_VOXELS, AffineELU

MAX_PARTS = 64  # kernels/dense_parts.c
KERNELS = {torch.float32: "affine_elu_parts_f32", torch.bfloat16: "affine_elu_parts_bf16"}


@dataclass(frozen=True)
class Part:
    """Some channels of every voxel of a ``(B, ·, D, H, W)`` volume: a channels-last 3D tensor
    ``(B, k, D, H, W)``, or with ``paired`` the output of a convolution computing two output
    depths at a time, ``(B, 2k, D / 2, H, W)`` channels-last (depth ``2i`` in channels ``[0, k)``
    of depth ``i``, depth ``2i + 1`` in ``[k, 2k)``)."""

    tensor: torch.Tensor
    paired: bool = False

    @property
    def channels(self) -> int:
        return self.tensor.shape[1] // 2 if self.paired else self.tensor.shape[1]

    def dense(self) -> torch.Tensor:
        """The part as a ``(B, k, D, H, W)`` tensor (channels-last; a copy when paired)."""
        if not self.paired:
            return self.tensor
        b, _, half, h, w = self.tensor.shape
        out = torch.empty((b, self.channels, 2 * half, h, w), dtype=self.tensor.dtype, memory_format=torch.channels_last_3d)
        return self.write(out)

    def write(self, out: torch.Tensor) -> torch.Tensor:
        """Copy the part into ``out`` (``(B, k, D, H, W)``, any strides, e.g. a channel range of a
        larger buffer), interleaving a paired part's depths in the same copy; returns ``out``."""
        if not self.paired:
            return out.copy_(self.tensor)
        out.unflatten(2, (self.tensor.shape[2], 2)).copy_(self.tensor.unflatten(1, (2, self.channels)).permute(0, 2, 3, 1, 4, 5))
        return out


def _kernel_args(parts: list[Part]) -> tuple:
    if len(parts) > MAX_PARTS:
        raise ValueError(f"at most {MAX_PARTS} parts, got {len(parts)}")
    for part in parts:
        if not part.tensor.is_contiguous(memory_format=torch.channels_last_3d):
            raise ValueError("parts must be channels-last 3D tensors")
    n = len(parts)
    pointers = (ctypes.c_void_p * n)(*(p.tensor.data_ptr() for p in parts))
    channels = (ctypes.c_int64 * n)(*(p.channels for p in parts))
    paired = (ctypes.c_int32 * n)(*(int(p.paired) for p in parts))
    return pointers, channels, paired, n


def _grid(parts: list[Part]) -> tuple[tuple[int, int, int, int], int]:
    """((batch, depth, height, width), jobs) of the parts' volume (kernels/dense_parts.c: jobs are
    chunks of a pair of planes)."""
    b, _, d, h, w = parts[0].tensor.shape
    depth = 2 * d if parts[0].paired else d
    return (b, depth, h, w), b * math.ceil(depth / 2) * math.ceil(h * w / CHUNK_VOXELS)


def affine_elu_parts(norm: AffineELU, parts: list[Part]) -> torch.Tensor:
    """``norm`` on the concatenation of ``parts`` (same dtype, channels-last), without building
    it: a channels-last 3D tensor of ``norm.channels`` channels."""
    dtype = parts[0].tensor.dtype
    library = load_library() if dtype in KERNELS and parts[0].tensor.device.type == "cpu" else None
    if library is None or any(p.tensor.requires_grad for p in parts):
        return norm(torch.cat([p.dense() for p in parts], dim=1))
    if sum(p.channels for p in parts) != norm.channels:
        raise ValueError(f"{norm.channels} channels expected, the parts have {sum(p.channels for p in parts)}")
    (batch, depth, h, w), jobs = _grid(parts)
    y = torch.empty((batch, norm.channels, depth, h, w), dtype=dtype, memory_format=torch.channels_last_3d)
    args = (*_kernel_args(parts), y.data_ptr(), norm.scale_chunk.data_ptr(), norm.shift_chunk.data_ptr(), norm.alpha,
            norm.channels, depth, h * w, CHUNK_VOXELS)
    run_jobs(getattr(library, KERNELS[dtype]), args, jobs)
    return y


def gather_parts(parts: list[Part]) -> torch.Tensor:
    """The concatenation of ``parts`` along channels, channels-last 3D, written once."""
    library = load_library() if parts[0].tensor.device.type == "cpu" else None
    if library is None:
        return torch.cat([p.dense() for p in parts], dim=1).contiguous(memory_format=torch.channels_last_3d)
    (batch, depth, h, w), jobs = _grid(parts)
    channels, dtype = sum(p.channels for p in parts), parts[0].tensor.dtype
    if any(p.tensor.dtype != dtype for p in parts):
        raise ValueError("parts must share a dtype")
    y = torch.empty((batch, channels, depth, h, w), dtype=dtype, memory_format=torch.channels_last_3d)
    args = (*_kernel_args(parts), y.data_ptr(), y.element_size(), channels, depth, h * w, CHUNK_VOXELS)
    run_jobs(library.gather_parts, args, jobs)
    return y
