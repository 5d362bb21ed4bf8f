"""Reduced-precision inference with the cheapest convolutions kept in fp32.

Under bf16 autocast, most of a generator's rounding error comes from a few narrow convolutions
next to the image, not from the wide ones that hold its FLOPs: an encoder layer whose output is a
skip connection the decoder adds back at full resolution passes its rounding to the output
unattenuated. :func:`keep_cheapest_in_fp32` therefore runs the cheapest convolutions, up to a
share of the network's FLOPs, in fp32.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)

CONVOLUTIONS_3D = (nn.Conv3d, nn.ConvTranspose3d)


class Float32Island(nn.Module):
    """Runs ``module`` in fp32 with autocast off (its input cast to float32); the output stays float32."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.module(x.float())


def convolution_flops(network: nn.Module, probe_shape: Sequence[int] = (16, 16, 16)) -> dict[str, float]:
    """FLOPs per input voxel of every 3D convolution (plain or transposed) of ``network``, by name,
    measured with forward hooks on a ``probe_shape`` input (so layers below a downsampling count
    for the fewer voxels they see). A transposed convolution multiplies each of its *input*
    voxels by the kernel, a convolution each of its output voxels. The probe has as many channels
    as the first convolution takes."""
    flops: dict[str, float] = {}

    def counter(name: str):
        def hook(module, inputs, output):
            k = module.weight.shape[2:].numel()
            voxels = (inputs[0].numel() // module.in_channels if module.transposed
                      else output.numel() // module.out_channels)
            flops[name] = flops.get(name, 0.0) + 2 * voxels * (module.in_channels // module.groups) * module.out_channels * k
        return hook

    convolutions = [(n, m) for n, m in network.named_modules() if isinstance(m, CONVOLUTIONS_3D)]
    if not convolutions:
        return flops
    handles = [m.register_forward_hook(counter(n)) for n, m in convolutions]
    first = convolutions[0][1]
    try:
        with torch.inference_mode():
            network(torch.rand(1, first.in_channels, *probe_shape, device=first.weight.device))
    finally:
        for h in handles:
            h.remove()
    voxels = float(torch.Size(probe_shape).numel())
    return {name: f / voxels for name, f in flops.items()}


def probed_convolution_flops(network: nn.Module) -> dict[str, float]:
    """:func:`convolution_flops`, or an empty dict (every layer in reduced precision, with a
    warning) for a network that cannot run on the probe."""
    try:
        return convolution_flops(network)
    except Exception as err:  # e.g. a network that needs larger inputs than the probe
        logger.warning("fp32_share ignored: the FLOP probe failed (%s: %s)", type(err).__name__, err)
        return {}


def cheapest_convolutions(flops: dict[str, float], share: float) -> list[str]:
    """Names of the cheapest convolutions whose FLOPs add up to at most ``share`` of the total."""
    total, chosen, spent = sum(flops.values()), [], 0.0
    for name, f in sorted(flops.items(), key=lambda item: item[1]):
        if spent + f > share * total:
            break
        chosen.append(name)
        spent += f
    return chosen


def keep_cheapest_in_fp32(network: nn.Module, share: float,
                          flops: dict[str, float] | None = None) -> tuple[nn.Module, list[str]]:
    """A copy of ``network`` whose cheapest convolutions (at most ``share`` of its FLOPs; see the
    module docstring) run in fp32 under autocast, and their names; ``network`` itself when none is.

    ``flops``: :func:`convolution_flops` of ``network`` or of a network with the same module names
    (e.g. before a rewrite that changed the convolutions' type but not their names).
    """
    if share <= 0:
        return network, []
    names = cheapest_convolutions(flops if flops is not None else convolution_flops(network), share)
    if not names:
        return network, []
    network = copy.deepcopy(network)
    for name in names:
        network.set_submodule(name, Float32Island(network.get_submodule(name)))
    return network, names

