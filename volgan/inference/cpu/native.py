"""volgan's native CPU forms of its generators, found by the network's class.

Each native module registers a builder for the generator classes it computes
(:func:`register_native`); :func:`native_network` looks the network's own class up. mDCSRN and
RED-WGAN run their 3x3x3 convolutions as depth Winograd with C kernels compiled on first use
(fp32); the PET U-Net runs oneDNN's convolutions without concatenation or interleaving copies, in
fp32, or in bf16 where oneDNN runs it (fast mode on CPUs with AVX-512 BF16).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

import torch
from torch import nn

logger = logging.getLogger(__name__)

NativeForm = Callable[[torch.Tensor], torch.Tensor]
# builder(network, dtype, winograd) -> the form, or None when it has none in that dtype here
NativeBuilder = Callable[[nn.Module, torch.dtype, bool], NativeForm | None]
BUILDERS: dict[type[nn.Module], NativeBuilder] = {}
# the modules whose import registers their builders
FORM_MODULES = ("volgan.inference.cpu.native_unet", "volgan.inference.cpu.native_dense",
                "volgan.inference.cpu.native_red_wgan")


def register_native(*classes: type[nn.Module]) -> Callable[[NativeBuilder], NativeBuilder]:
    """Decorator: ``builder`` makes the native form of networks of exactly these ``classes``."""
    def register(builder: NativeBuilder) -> NativeBuilder:
        for cls in classes:
            BUILDERS[cls] = builder
        return builder
    return register


def native_network(network: nn.Module, winograd: bool = True,
                   dtype: torch.dtype = torch.float32) -> NativeForm | None:
    """The native CPU form of an eval-mode ``network`` in ``dtype``, or ``None`` when it has none here.

    PET U-Nets (alone or chained) have one in float32 always and in bfloat16 where oneDNN's fused
    convolutions run bf16 (:func:`~volgan.inference.cpu.native_unet.native_dtype_available`); mDCSRN
    and RED-WGAN in float32 only, with ``winograd``, when the kernels build (a C compiler,
    ``VOLGAN_NATIVE_KERNELS`` not ``0``). Each form has a ``winograd`` attribute saying whether it
    computes 3x3x3 convolutions in Winograd form.

    Only the registered classes themselves (not subclasses, which may compute something else)
    have one, and a network that does not match the form (a layer renamed, removed or reshaped)
    has none: it runs in PyTorch.
    """
    for name in FORM_MODULES:
        importlib.import_module(name)
    builder = BUILDERS.get(type(network))
    if builder is None:
        return None
    try:
        return builder(network, dtype, winograd)
    except Exception as err:  # a layer renamed, removed or of another shape than the form reads
        logger.info("no native form for this %s (%s: %s): it runs in PyTorch", type(network).__name__,
                    type(err).__name__, err)
    return None
