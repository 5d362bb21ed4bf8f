"""What runs a Predictor's windows: the network in PyTorch on any device, and the report that
names the form a network runs in (this one, or one the CPU accelerator built,
:func:`volgan.inference.cpu.build_forward`)."""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

from volgan.inference.mixed_precision import keep_cheapest_in_fp32, probed_convolution_flops
from volgan.inference.optimise import fold_batchnorm

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# what runs a network: "auto" picks (on the CPU the accelerator, elsewhere PyTorch)
BACKENDS = ("auto", "native", "torch")


@dataclass
class FormReport:
    """How a network runs.

    Attributes:
        network: the module that runs in PyTorch (for a native form, the module it was built
            from).
        backend: ``"torch"`` or ``"native"``.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        channels_last: windows enter the network channels-last (3D).
        native: the native form's class name (``backend="native"``).
        winograd: 3x3x3 convolutions computed in depth-Winograd form.
        folded: BatchNorm layers folded into the convolutions before them.
        subpixel: transposed convolutions run as stride-1 convolutions plus a pixel shuffle.
        buffered_dense: dense blocks run from gathered parts, without concatenation copies.
        split_concat: a concatenation followed by a 1x1x1 convolution runs as a sum of convolutions.
        fused: convolutions run through oneDNN with what follows them fused in.
        norm_elu: BatchNorm + ELU run as one C pass.
        fp32_layers: convolutions kept in fp32 in a reduced precision.
    """

    network: nn.Module
    backend: str = "torch"
    precision: str = "fp32"
    channels_last: bool = False
    native: str = ""
    winograd: bool = False
    folded: bool = False
    subpixel: int = 0
    buffered_dense: bool = False
    split_concat: bool = False
    fused: bool = False
    norm_elu: bool = False
    fp32_layers: list[str] = field(default_factory=list)

    def describe(self, reference: nn.Module, device: torch.device) -> str | None:
        """What runs ``reference``, e.g. ``"PetUNetGenerator as native NativePetUNet in bf16 on cpu"``;
        ``None`` for the plain network (PyTorch, fp32, no rewrite)."""
        if self.backend == "native":
            how = f"native {self.native}" + (" (Winograd)" if self.winograd else "")
        else:
            rewrites = [name for name, on in (
                ("folded BatchNorm", self.folded), ("sub-pixel transposed convolutions", self.subpixel),
                ("buffered dense blocks", self.buffered_dense), ("split concatenation", self.split_concat),
                ("fused convolutions", self.fused), ("BatchNorm+ELU pass", self.norm_elu),
                ("fp32 layers", self.fp32_layers), ("channels-last", self.channels_last),
                (f"{self.precision} autocast", self.precision != "fp32")) if on]
            if not rewrites:
                return None
            how = f"PyTorch with {', '.join(rewrites)}"
        return f"{type(reference).__name__} as {how} in {self.precision} on {torch.device(device).type}"


class TorchForward:
    """``report.network`` in PyTorch on a batch of windows: channels-last when the report says so,
    under autocast in a reduced precision. Reads the report on every call, so a module swapped
    into it (e.g. a compiled one) runs from then on."""

    def __init__(self, report: FormReport, device: torch.device):
        self.report, self.device = report, torch.device(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.report.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        dtype = PRECISIONS[self.report.precision]
        with torch.autocast(self.device.type, dtype=dtype) if dtype is not None else nullcontext():
            return self.report.network(x)


def folded_copy(network: nn.Module, device: torch.device) -> tuple[nn.Module, bool]:
    """A copy of ``network`` on ``device`` with its BatchNorm layers folded into the convolutions
    before them (never the caller's module itself), and whether any was."""
    folded = fold_batchnorm(network)
    return (copy.deepcopy(network) if folded is network else folded).to(device), folded is not network


def torch_forward(network: nn.Module, device: torch.device, precision: str, channels_last: bool,
                  fp32_share: float = 0.0) -> tuple[TorchForward, FormReport]:
    """``network`` in PyTorch on any device: BatchNorm folded, in ``precision`` (autocast) with the
    cheapest convolutions up to ``fp32_share`` of the FLOPs in fp32, channels-last if asked."""
    module, folded = folded_copy(network, device)
    fp32_layers: list[str] = []
    if PRECISIONS[precision] is not None and fp32_share > 0:
        flops = probed_convolution_flops(module)
        if flops:
            module, fp32_layers = keep_cheapest_in_fp32(module, fp32_share, flops)
    if channels_last:
        module = module.to(memory_format=torch.channels_last_3d)
    report = FormReport(module, "torch", precision, channels_last, folded=folded, fp32_layers=fp32_layers)
    return TorchForward(report, device), report


def plain_forward(network: nn.Module, device: torch.device) -> tuple[TorchForward, FormReport]:
    """``network`` itself in fp32, as it is: what every other form is checked against."""
    report = FormReport(network)
    return TorchForward(report, device), report
