"""volgan's native CPU forms of its generators.

mDCSRN and RED-WGAN run their 3x3x3 convolutions as depth Winograd with C kernels compiled on
first use (fp32); the PET U-Net runs oneDNN's convolutions without concatenation or interleaving
copies, in fp32, or in bf16 where oneDNN runs it (fast mode on CPUs with AVX-512 BF16).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from volgan.inference.native_dense import native_mdcsrn
from volgan.inference.native_kernels import load_library
from volgan.inference.native_red_wgan import native_red_wgan
from volgan.inference.native_unet import native_pet_unet
from volgan.networks import ConcatenatedGenerator, MdcsrnGenerator, PetUNetGenerator, RedWganGenerator

logger = logging.getLogger(__name__)

WINOGRAD_BUILDERS = ((MdcsrnGenerator, native_mdcsrn), (RedWganGenerator, native_red_wgan))


def native_network(network: nn.Module, winograd: bool = True,
                   dtype: torch.dtype = torch.float32) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The native CPU form of an eval-mode ``network`` in ``dtype``, or ``None`` when it has none here.

    PET U-Nets (alone or chained) have one in float32 always and in bfloat16 where oneDNN's fused
    convolutions run bf16 (:func:`~volgan.inference.native_unet.native_dtype_available`); mDCSRN
    and RED-WGAN in float32 only, with ``winograd``, when the kernels build (a C compiler,
    ``VOLGAN_NATIVE_KERNELS`` not ``0``). Each form has a ``winograd`` attribute saying whether it
    computes 3x3x3 convolutions in Winograd form.

    Only the generators' own classes (not subclasses, which may compute something else) have
    one, and a network that does not match the form (a layer renamed, removed or reshaped) has
    none: it runs in PyTorch.
    """
    try:
        if type(network) in (PetUNetGenerator, ConcatenatedGenerator):
            return native_pet_unet(network, dtype)
        for kind, builder in WINOGRAD_BUILDERS:
            if winograd and dtype == torch.float32 and type(network) is kind:
                library = load_library()
                return None if library is None else builder(network, library)
    except Exception as err:  # a layer renamed, removed or of another shape than the form reads
        logger.info("no native form for this %s (%s: %s): it runs in PyTorch", type(network).__name__,
                    type(err).__name__, err)
    return None
