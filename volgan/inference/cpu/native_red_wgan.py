"""RED-WGAN on the CPU with depth-Winograd convolutions, PyTorch 2D convolutions and fused C passes.

The same function as :class:`~volgan.networks.RedWganGenerator` (up to fp32 rounding). Activations
are channels-last volumes ``(B, D, H, W, C)``. The six inner convolutions are
:class:`~volgan.inference.cpu.native_winograd.WinogradLayer` s whose epilogue adds the skip connection,
applies the BatchNorm and the LeakyReLU in the same pass; the first (1 -> c1) and last (c1 -> 1)
convolutions, which are too narrow for the Winograd form to pay, run as channels-last PyTorch
3D convolutions.
"""

from __future__ import annotations

import copy
import ctypes

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from volgan.inference.cpu.batchnorm import batchnorm_affine, is_eval_batchnorm
from volgan.inference.cpu.fused_pointwise import channels_last_3d, fp32_convolution
from volgan.inference.cpu.native import register_native
from volgan.inference.cpu.native_kernels import load_library
from volgan.inference.cpu.native_winograd import WinogradLayer
from volgan.inference.cpu.winograd import is_plain_3x3x3, worth_winograd
from volgan.networks.red_wgan import RedWganGenerator

INNER = (("enc2", None), ("enc3", None), ("enc4", None), ("dec4", "post4"), ("dec3", "post3"), ("dec2", "post2"))


def _parts(network: RedWganGenerator, name: str, post: str | None) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(convolution, BatchNorm, activation) of one layer."""
    if post is None:
        conv, (norm, act) = getattr(network, name)
    else:
        conv, (norm, act) = getattr(network, name), getattr(network, post)
    return conv, norm, act


def _supported(network: RedWganGenerator) -> bool:
    try:
        layers = [_parts(network, name, post) for name, post in (("enc1", None), *INNER)]
    except (TypeError, ValueError):  # a layer of another structure
        return False
    return (all(isinstance(act, nn.LeakyReLU) and is_eval_batchnorm(norm) for _, norm, act in layers)
            and all(worth_winograd(conv) for conv, _, _ in layers[1:])
            and is_plain_3x3x3(layers[0][0]) and is_plain_3x3x3(network.dec1) and isinstance(network.out_act, nn.ReLU))


class NativeRedWgan:
    """Callable ``(B, C, D, H, W)`` float32 CPU tensor -> output of ``network`` on it.

    Build it with :func:`native_red_wgan`, which checks that the network allows it. ``fused``: the
    first convolution through oneDNN's fused convolutions (``None``: where this PyTorch has them;
    :func:`~volgan.inference.cpu.fused_pointwise.fp32_convolution`).
    """

    winograd = True

    def __init__(self, network: RedWganGenerator, library: ctypes.CDLL, *, fused: bool | None = None):
        self.library = library
        network = copy.deepcopy(network).float().cpu()
        conv, norm, act = _parts(network, "enc1", None)
        # the first convolution with its BatchNorm folded in, and its LeakyReLU
        self.first = fp32_convolution(fuse_conv_bn_eval(conv, norm), "leaky_relu", float(act.negative_slope), fused=fused)
        self.inner = []
        for name, post in INNER:
            conv, norm, act = _parts(network, name, post)
            scale, shift = batchnorm_affine(norm)
            self.inner.append(WinogradLayer(conv, scale=scale, shift=shift, slope=float(act.negative_slope)))
        self.last = network.dec1
        self.last.weight.data = self.last.weight.data.contiguous(memory_format=torch.channels_last_3d)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().contiguous()
        e1 = self.first(channels_last_3d(x)).permute(0, 2, 3, 4, 1).contiguous()  # (B, D, H, W, c1): no copy
        skips = [e1]
        y = e1
        for i, layer in enumerate(self.inner):
            out = torch.empty(*y.shape[:4], layer.out_channels)
            residual = skips[5 - i] if i >= 3 else None  # dec4 adds e3, dec3 e2, dec2 e1
            layer(self.library, y, out, residual=residual)
            y = out
            if i < 2:
                skips.append(y)
        y = self.last(y.permute(0, 4, 1, 2, 3))  # a channels-last view: no copy
        return F.relu_(y.add_(x)).contiguous()


def native_red_wgan(network: RedWganGenerator, library: ctypes.CDLL) -> NativeRedWgan | None:
    """The native form of an eval-mode RED-WGAN generator; ``None`` in training mode, for layers of another
    structure, or when an inner convolution is too narrow for the Winograd form."""
    if network.training or not _supported(network):
        return None
    return NativeRedWgan(network, library)


@register_native(RedWganGenerator)
def _build(network: RedWganGenerator, dtype: torch.dtype, winograd: bool) -> NativeRedWgan | None:
    """The registered builder: fp32 Winograd only, when the C kernels build."""
    library = load_library() if winograd and dtype == torch.float32 else None
    return None if library is None else native_red_wgan(network, library)
