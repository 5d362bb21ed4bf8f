"""volgan's native CPU forms of its generators (fp32, C kernels compiled on first use)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from volgan.inference.native_dense import native_mdcsrn
from volgan.inference.native_kernels import load_library
from volgan.inference.native_red_wgan import native_red_wgan
from volgan.networks import MdcsrnGenerator, RedWganGenerator

BUILDERS = ((MdcsrnGenerator, native_mdcsrn), (RedWganGenerator, native_red_wgan))


def native_network(network: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The native CPU form of an eval-mode ``network`` (mDCSRN, RED-WGAN), or ``None`` when it has
    none or the kernels cannot be built here (no C compiler, ``VOLGAN_NATIVE_KERNELS=0``)."""
    for kind, builder in BUILDERS:
        if isinstance(network, kind):
            library = load_library()
            return None if library is None else builder(network, library)
    return None
