"""Inference-time rewrites of a generator that leave its function unchanged (up to rounding)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)


def fold_batchnorm(network: nn.Module) -> nn.Module:
    """Fold every BatchNorm that directly follows a convolution into the convolution's weights.

    Uses ``torch.fx`` (eval-mode statistics); a network that cannot be traced is returned as is.
    """
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(network.eval(), inplace=False)
    except Exception as err:  # tracing limits are network-specific; folding is only an optimisation
        logger.warning("BatchNorm folding skipped (%s: %s)", type(err).__name__, err)
        return network


def cpu_has_fast_bf16() -> bool:
    """True if this CPU has native bf16 dot products (AVX-512 BF16 or AMX); otherwise bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def fast_precision(device: torch.device) -> str:
    """The reduced precision worth using on ``device``: bf16 on CUDA (fp16 before Ampere) and on CPUs
    with native bf16; fp32 elsewhere (emulated bf16 is far slower than fp32)."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"
