"""mDCSRN on the CPU with depth-Winograd convolutions, PyTorch 2D convolutions and fused C passes.

The same function as :class:`~volgan.networks.MdcsrnGenerator` (up to fp32 rounding), computed
so that almost all time is spent in convolutions:

* activations are channels-last volumes ``(B, D, H, W, C)``; each dense block writes its
  features into one preallocated buffer (no concatenation copies), and every unit reads the
  channel range it needs from it;
* each unit (BN -> ELU -> 3x3x3 convolution) is Winograd F(4, 3) along depth
  (:mod:`volgan.inference.winograd`: half the multiplications): one C pass applies the unit's
  BatchNorm and ELU and the input transform; six channels-last 3x3 2D convolutions (oneDNN, far
  faster than ONNX Runtime's for these narrow layers: 107 against 63 GFLOP/s for 40 -> 8 channels
  here); one C pass applies the output transform and bias and writes the unit's new channels
  into the block buffer;
* the 1x1x1 compressors and the reconstruction layer are matrix products over the voxels.

Measured on a 2-core AVX2 CPU, a 104x120x104 window of the small preset took 5.5-5.8 s in
ONNX Runtime (the depth-major Winograd graph, 71 % of it in element-wise, slice, concatenation
and layout passes); see the README for this module's figures.
"""

from __future__ import annotations

import copy
import ctypes

import torch
import torch.nn.functional as F
from torch import nn

from volgan.inference.native_kernels import load_library, run_jobs
from volgan.inference.winograd import G, TILE, is_plain_3x3x3
from volgan.networks.mdcsrn import DenseUnit, MdcsrnGenerator


def _supported_unit(unit: nn.Module) -> bool:
    norm = getattr(unit, "norm", None)
    return (
        isinstance(unit, DenseUnit) and isinstance(unit.act, nn.ELU) and is_plain_3x3x3(unit.conv)
        and isinstance(norm, nn.BatchNorm3d) and not norm.training and norm.track_running_stats
        and norm.running_mean is not None
    )


def _float_pointer(tensor: torch.Tensor, offset: int = 0) -> int:
    return tensor.data_ptr() + offset * tensor.element_size()


class NativeDenseUnit:
    """One dense unit: reads channels ``[0, C)`` of a block buffer, writes ``[C, C + k)``."""

    def __init__(self, unit: DenseUnit):
        norm, conv = copy.deepcopy(unit.norm).float().cpu(), copy.deepcopy(unit.conv).float().cpu()
        weight = norm.weight.detach() if norm.weight is not None else torch.ones_like(norm.running_var)
        scale = weight / torch.sqrt(norm.running_var + norm.eps)
        shift = (norm.bias.detach() if norm.bias is not None else 0) - norm.running_mean * scale
        self.scale, self.shift = scale.float().contiguous(), shift.float().contiguous()
        self.alpha = float(unit.act.alpha)
        kernels = torch.einsum("tk,oikhw->toihw", torch.tensor(G, dtype=torch.float64), conv.weight.detach().double())
        self.kernels = [k.float().contiguous(memory_format=torch.channels_last) for k in kernels]
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels)
        self.bias = bias.float().contiguous()
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels

    def __call__(self, library: ctypes.CDLL, buffer: torch.Tensor) -> None:
        batch, depth, height, width, stride = buffer.shape
        plane, channels, tiles = height * width, self.in_channels, (depth + TILE - 1) // TILE
        d = torch.empty(6, batch * tiles, height, width, channels)
        run_jobs(library.winograd_input_affine_elu, (
            buffer.data_ptr(), stride, d.data_ptr(), self.scale.data_ptr(), self.shift.data_ptr(), self.alpha,
            batch, depth, plane, channels, tiles), batch * tiles)
        m = []
        for i in range(6):
            mi = F.conv2d(d[i].permute(0, 3, 1, 2), self.kernels[i], padding=1)
            m.append(mi.contiguous(memory_format=torch.channels_last))  # a no-op for oneDNN's output
        del d
        pointers = (ctypes.c_void_p * 6)(*(mi.data_ptr() for mi in m))
        run_jobs(library.winograd_output, (
            pointers, _float_pointer(buffer, channels), stride, self.bias.data_ptr(),
            batch, depth, plane, self.out_channels, tiles), batch * tiles)


class NativeMdcsrn:
    """Callable ``(B, C, D, H, W)`` float32 CPU tensor -> output of ``network`` on it.

    Build it with :func:`native_mdcsrn`, which checks that the network and the kernels allow it.
    """

    def __init__(self, network: MdcsrnGenerator, library: ctypes.CDLL):
        self.library = library
        network = copy.deepcopy(network).float().cpu()
        self.first = network.first
        self.width = network.first.out_channels
        self.blocks = [[NativeDenseUnit(unit) for unit in block.units] for block in network.blocks]
        self.compressors = [(c.weight.detach().flatten(1).t().float().contiguous(),
                             c.bias.detach().float() if c.bias is not None else torch.zeros(c.out_channels))
                            for c in network.compressors]
        recon = network.reconstruction.weight.detach().flatten(1).t().float()  # (levels * width, C)
        self.reconstruction = [r.contiguous() for r in recon.split(self.width)]
        self.reconstruction_bias = (network.reconstruction.bias.detach().float() if network.reconstruction.bias is not None
                                    else torch.zeros(network.reconstruction.out_channels))
        self.channels = max(unit.in_channels + unit.out_channels for block in self.blocks for unit in block)
        self.global_residual = network.global_residual

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().contiguous()
        batch, channels, depth, height, width = x.shape
        features = self.first(x).permute(0, 2, 3, 4, 1)  # (B, D, H, W, 2k)
        buffer = torch.empty(batch, depth, height, width, self.channels)
        buffer[..., : self.width] = features
        voxels = buffer.view(-1, self.channels)
        recon = torch.mm(voxels[:, : self.width], self.reconstruction[0])
        for units, (weight, bias), recon_weight in zip(self.blocks, self.compressors, self.reconstruction[1:]):
            for unit in units:
                unit(self.library, buffer)
            compressed = torch.addmm(bias, voxels[:, : units[-1].in_channels + units[-1].out_channels], weight)
            recon.addmm_(compressed, recon_weight)
            voxels[:, : self.width] = compressed
        y = (recon + self.reconstruction_bias).view(batch, depth, height, width, -1).permute(0, 4, 1, 2, 3)
        return (y + x) if self.global_residual else y.contiguous()


def native_mdcsrn(network: nn.Module) -> NativeMdcsrn | None:
    """The native CPU form of an eval-mode mDCSRN generator; ``None`` for other networks, for
    units that are not BN -> ELU -> plain 3x3x3 convolution, or when the kernels cannot be built."""
    if not isinstance(network, MdcsrnGenerator) or network.training:
        return None
    if not all(_supported_unit(unit) for block in network.blocks for unit in block.units):
        return None
    library = load_library()
    return None if library is None else NativeMdcsrn(network, library)
