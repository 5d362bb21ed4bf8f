"""CPU acceleration of the Predictor's forward pass; optional, imported only on the CPU.

One entry point, :func:`build_forward`: the fastest form of a network that runs here, and a
:class:`~volgan.inference.forms.FormReport` naming it. In order of preference:

* a native form, for the generators that register one (:mod:`.native`): the PET U-Net in fp32
  and bf16 (oneDNN convolutions without concatenation copies), mDCSRN and RED-WGAN in fp32
  (depth-Winograd convolutions with C kernels compiled on first use, :mod:`.native_kernels`);
* PyTorch with CPU rewrites of any network: transposed convolutions as sub-pixel convolutions
  (:mod:`.subpixel`), and channels-last in fp32 or bf16: mDCSRN's dense blocks from parts
  (:mod:`.buffered_dense`), concatenations before 1x1x1 convolutions as sums
  (:mod:`.concat_pointwise`), convolutions fused with what follows them (:mod:`.fused_pointwise`),
  BatchNorm + ELU in one C pass (:mod:`.norm_elu`).

The predictor checks whatever this returns against the plain network before trusting it
(:mod:`volgan.inference.forward_guard`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from volgan.inference.cpu.allocator import keep_freed_memory
from volgan.inference.cpu.buffered_dense import BufferedDenseBlock, buffer_dense_blocks
from volgan.inference.cpu.concat_pointwise import ConcatPointwiseConv3d, split_concat_pointwise
from volgan.inference.cpu.fused_pointwise import (
    PointwiseConv3d,
    fold_batchnorm_after_add,
    fuse_pointwise,
    fused_pointwise_available,
)
from volgan.inference.cpu.native import native_network
from volgan.inference.cpu.native_kernels import load_library
from volgan.inference.cpu.norm_elu import AffineELU, fuse_norm_elu
from volgan.inference.cpu.subpixel import subpixel_transposed_convolutions
from volgan.inference.forms import BACKENDS, PRECISIONS, FormReport, TorchForward, folded_copy
from volgan.inference.mixed_precision import cheapest_convolutions, keep_cheapest_in_fp32, probed_convolution_flops

logger = logging.getLogger(__name__)

# precisions of the native forms (bf16: the PET U-Net only, where oneDNN runs it) and of the
# fused oneDNN convolutions (channels-last PyTorch)
NATIVE_PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
FUSED_PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
NATIVE_REFUSED = ("backend='native' runs a PET U-Net generator on the CPU in fp32, or in bf16 where oneDNN runs "
                  "bf16 convolutions (AVX-512), and mDCSRN or RED-WGAN in fp32 with winograd=True and a C "
                  "compiler (cc, or $CC), see volgan.inference.cpu.native_kernels")

Forward = Callable[[torch.Tensor], torch.Tensor]


def build_forward(network: nn.Module, device: torch.device | str, precision: str, fast: bool, backend: str, *,
                  channels_last: bool | None = None, winograd: bool = True,
                  fp32_share: float = 0.0) -> tuple[Forward, FormReport]:
    """The form an eval-mode ``network`` runs in on the CPU, and the report naming it.

    Args:
        network: the caller's network; never modified (forms copy what they need).
        device: a CPU device.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        fast: the predictor's fast mode (channels-last by default).
        backend: ``"auto"`` (the order in the module docstring), ``"native"`` or ``"torch"``
            (PyTorch with the CPU rewrites).
        channels_last: channels-last 3D windows (``None``: in fast mode).
        winograd: allow the native depth-Winograd forms (mDCSRN, RED-WGAN) in fp32.
        fp32_share: in a reduced precision, the cheapest convolutions up to this share of the
            FLOPs stay in fp32 (:mod:`volgan.inference.mixed_precision`).

    Returns:
        ``(forward, report)``: ``forward`` maps a batch of windows ``(B, 1, D, H, W)`` to the
        network's output.

    Raises:
        ValueError: for a backend that cannot run this network in this precision here.
    """
    device = torch.device(device)
    if device.type != "cpu":
        raise ValueError(f"the CPU accelerator runs on the CPU, not on {device}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    channels_last = bool(fast) if channels_last is None else bool(channels_last)
    keep_freed_memory()  # large host allocations reused: no page faults on every pass
    native_dtype = NATIVE_PRECISIONS.get(precision)
    native = (native_network(network, winograd, native_dtype)
              if native_dtype is not None and backend in ("auto", "native") else None)
    if native is not None:
        return native, FormReport(network, "native", precision, channels_last, native=type(native).__name__,
                                  winograd=native.winograd)
    if backend == "native":
        raise ValueError(NATIVE_REFUSED)
    module, folded = folded_copy(network, device)
    return _torch_on_cpu(module, folded, device, precision, channels_last, fp32_share)


def _torch_on_cpu(module: nn.Module, folded: bool, device: torch.device, precision: str, channels_last: bool,
                  fp32_share: float) -> tuple[TorchForward, FormReport]:
    """A folded copy of the network in PyTorch with the CPU rewrites (module docstring)."""
    report = FormReport(module, "torch", precision, channels_last, folded=folded)
    flops = probed_convolution_flops(module) if PRECISIONS[precision] is not None and fp32_share > 0 else None
    # the narrow layers next to the image set most of the rounding error
    fp32_layers = cheapest_convolutions(flops, fp32_share) if flops else []
    dtype = FUSED_PRECISIONS.get(precision)
    fusable = channels_last and dtype is not None and fused_pointwise_available(dtype)
    kernels = load_library() is not None
    if fusable and kernels:
        module = buffer_dense_blocks(module, dtype)
        report.buffered_dense = any(isinstance(m, BufferedDenseBlock) for m in module.modules())
    # PyTorch's CPU transposed convolutions scatter (col2im); sub-pixel convolutions do not
    module, report.subpixel = subpixel_transposed_convolutions(module)
    if fusable:
        module = split_concat_pointwise(module, dtype, fp32_layers)
        report.split_concat = any(isinstance(m, ConcatPointwiseConv3d) for m in module.modules())
        # the buffered dense blocks' own oneDNN convolutions do not count as fused
        before = {name for name, m in module.named_modules() if isinstance(m, PointwiseConv3d)}
        module = fuse_pointwise(fold_batchnorm_after_add(module), dtype, fp32_layers)
        fused = {name: m for name, m in module.named_modules() if isinstance(m, PointwiseConv3d) and name not in before}
        report.fused = bool(fused)
        report.fp32_layers = [name for name in fp32_layers if name in fused and fused[name].dtype == torch.float32]
        if report.fused and len(report.fp32_layers) < len(fp32_layers):  # e.g. a convolution called twice
            logger.warning("fp32_share: %s not fused, left in %s", sorted(set(fp32_layers) - set(report.fp32_layers)),
                           precision)
    if kernels:
        module = fuse_norm_elu(module)
        report.norm_elu = any(isinstance(m, AffineELU) for m in module.modules())
    if fp32_layers and not report.fused:
        module, report.fp32_layers = keep_cheapest_in_fp32(module, fp32_share, flops)
    if channels_last:
        module = module.to(memory_format=torch.channels_last_3d)
    report.network = module
    return TorchForward(report, device), report
