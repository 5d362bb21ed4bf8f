"""mDCSRN on the CPU with depth-Winograd convolutions, PyTorch 2D convolutions and fused C passes.

The same function as :class:`~volgan.networks.MdcsrnGenerator` (up to fp32 rounding), computed
so that most of the time is spent in convolutions:

* activations are channels-last volumes ``(B, D, H, W, C)``; each dense block writes its
  features into one preallocated buffer (no concatenation copies), and every unit reads the
  channel range it needs from it;
* each unit (BN -> ELU -> 3x3x3 convolution) is a :class:`~volgan.inference.cpu.native_winograd.WinogradLayer`
  with the BatchNorm and ELU as its prologue, writing its new channels into the block buffer;
* the 1x1x1 compressors and the reconstruction layer are matrix products over the voxels.

No element-wise, slice, concatenation or layout pass runs between the layers.
"""

from __future__ import annotations

import copy
import ctypes

import torch
from torch import nn

from volgan.inference.cpu.batchnorm import batchnorm_affine, is_eval_batchnorm
from volgan.inference.cpu.fused_pointwise import channels_last_3d, fp32_convolution
from volgan.inference.cpu.native import register_native
from volgan.inference.cpu.native_kernels import load_library
from volgan.inference.cpu.native_winograd import Prologue, WinogradLayer
from volgan.inference.cpu.winograd import is_plain_3x3x3
from volgan.networks.mdcsrn import DenseUnit, MdcsrnGenerator


def _supported_unit(unit: nn.Module) -> bool:
    return (isinstance(unit, DenseUnit) and isinstance(unit.act, nn.ELU) and is_plain_3x3x3(unit.conv)
            and is_eval_batchnorm(unit.norm))


def _unit_layer(unit: DenseUnit) -> WinogradLayer:
    scale, shift = batchnorm_affine(unit.norm)
    return WinogradLayer(unit.conv, prologue=Prologue(scale, shift, float(unit.act.alpha)))


class NativeMdcsrn:
    """Callable ``(B, C, D, H, W)`` float32 CPU tensor -> output of ``network`` on it.

    Build it with :func:`native_mdcsrn`, which checks that the network allows it. ``fused``: the
    first convolution through oneDNN's fused convolutions (``None``: where this PyTorch has them;
    :func:`~volgan.inference.cpu.fused_pointwise.fp32_convolution`).
    """

    winograd = True

    def __init__(self, network: MdcsrnGenerator, library: ctypes.CDLL, *, fused: bool | None = None):
        self.library = library
        network = copy.deepcopy(network).float().cpu()
        self.first = fp32_convolution(network.first, fused=fused)
        self.width = network.first.out_channels
        self.blocks = [[_unit_layer(unit) for unit in block.units] for block in network.blocks]
        self.compressors = [(c.weight.detach().flatten(1).t().contiguous(),
                             c.bias.detach() if c.bias is not None else torch.zeros(c.out_channels))
                            for c in network.compressors]
        recon = network.reconstruction.weight.detach().flatten(1).t()  # (levels * width, C)
        self.reconstruction = [r.contiguous() for r in recon.split(self.width)]
        self.reconstruction_bias = (network.reconstruction.bias.detach() if network.reconstruction.bias is not None
                                    else torch.zeros(network.reconstruction.out_channels))
        self.channels = max(unit.in_channels + unit.out_channels for block in self.blocks for unit in block)
        self.global_residual = network.global_residual

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().contiguous()
        batch, _, depth, height, width = x.shape
        features = self.first(channels_last_3d(x)).permute(0, 2, 3, 4, 1)  # (B, D, H, W, 2k)
        buffer = torch.empty(batch, depth, height, width, self.channels)
        buffer[..., : self.width] = features
        voxels = buffer.view(-1, self.channels)
        recon = torch.mm(voxels[:, : self.width], self.reconstruction[0])
        for units, (weight, bias), recon_weight in zip(self.blocks, self.compressors, self.reconstruction[1:]):
            for unit in units:
                unit(self.library, buffer, buffer, out_offset=unit.in_channels)
            compressed = torch.addmm(bias, voxels[:, : units[-1].in_channels + units[-1].out_channels], weight)
            recon.addmm_(compressed, recon_weight)
            voxels[:, : self.width] = compressed
        y = (recon + self.reconstruction_bias).view(batch, depth, height, width, -1).permute(0, 4, 1, 2, 3)
        return (y + x) if self.global_residual else y.contiguous()


def native_mdcsrn(network: MdcsrnGenerator, library: ctypes.CDLL) -> NativeMdcsrn | None:
    """The native form of an eval-mode mDCSRN generator; ``None`` in training mode, for units that
    are not BN -> ELU -> plain 3x3x3 convolution, or a first layer that is not a plain 3x3x3 convolution."""
    if network.training:
        return None
    if not is_plain_3x3x3(network.first) or not all(_supported_unit(unit) for block in network.blocks for unit in block.units):
        return None
    return NativeMdcsrn(network, library)


@register_native(MdcsrnGenerator)
def _build(network: MdcsrnGenerator, dtype: torch.dtype, winograd: bool) -> NativeMdcsrn | None:
    """The registered builder: fp32 Winograd only, when the C kernels build."""
    library = load_library() if winograd and dtype == torch.float32 else None
    return None if library is None else native_mdcsrn(network, library)
