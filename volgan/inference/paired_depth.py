"""A narrow 3x3x3 convolution computed two output depths at a time, for fast mode on the CPU.

oneDNN's CPU convolutions keep 16 output channels per AVX-512 register of float32 sums, so a
layer with fewer (mDCSRN's growth rate is 8 in the small preset) leaves most of each register
unused. Output depths ``2i`` and ``2i + 1`` read input depths ``2i - 1 .. 2i + 2``: both are one
convolution with a 4x3x3 kernel, stride 2 along depth and twice the output channels (the first
half: the kernel at depths 0-2 and zeros at 3; the second: zeros at 0 and the kernel at 1-3). That
is 4/3 of the multiply-adds, but in bf16 on an AVX-512 BF16 EPYC a 104x120x104 window of 16 -> 8
channels took 31 ms instead of 42, 40 -> 8 channels 78 ms instead of 111 (four output depths at a
time: 42 and 109 ms). The two halves are interleaved back along depth by the copy that writes the
result into its destination, e.g. a channel range of a dense block's buffer, which a network that
concatenates would pay anyway.
"""

from __future__ import annotations

import torch
from torch import nn

from volgan.inference.winograd import is_plain_3x3x3

# fewer output channels than one AVX-512 register of float32 sums
PAIRED_BELOW_CHANNELS = 16


def worth_pairing(conv: nn.Module) -> bool:
    return is_plain_3x3x3(conv) and conv.out_channels < PAIRED_BELOW_CHANNELS


def paired_weight(weight: torch.Tensor) -> torch.Tensor:
    """``(k, c, 3, 3, 3)`` -> ``(2k, c, 4, 3, 3)``: even output depths, then odd ones (module docstring)."""
    k, c = weight.shape[:2]
    paired = weight.new_zeros((2 * k, c, 4, 3, 3))
    paired[:k, :, :3] = weight
    paired[k:, :, 1:] = weight
    return paired


class PairedDepthConv3d(nn.Module):
    """A plain 3x3x3 convolution (stride 1, zero padding 1) in ``dtype`` through oneDNN, channels-last
    3D, computed two output depths at a time when ``pair`` (default: fewer than 16 output channels)
    and the input's depth is even; :meth:`forward_into` writes it into a given tensor."""

    def __init__(self, conv: nn.Conv3d, dtype: torch.dtype, pair: bool | None = None):
        super().__init__()
        if not is_plain_3x3x3(conv):
            raise ValueError(f"PairedDepthConv3d needs a 3x3x3 convolution with stride 1 and padding 1, got {conv}")
        self.dtype, self.out_channels = dtype, conv.out_channels
        self.pair = worth_pairing(conv) if pair is None else bool(pair)
        weight = conv.weight.detach()
        bias = conv.bias.detach() if conv.bias is not None else weight.new_zeros(self.out_channels)
        cl = torch.channels_last_3d
        self.register_buffer("weight", weight.to(dtype).contiguous(memory_format=cl))
        self.register_buffer("bias", bias.float())
        if self.pair:
            self.register_buffer("paired", paired_weight(weight).to(dtype).contiguous(memory_format=cl))
            self.register_buffer("paired_bias", bias.float().repeat(2))

    @staticmethod
    def _convolve(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: list[int]) -> torch.Tensor:
        padding = dilation = [1, 1, 1]
        return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, padding, stride, dilation, 1, "none", [], None)

    def forward_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Write the convolution of ``x`` into ``out`` (``(B, out_channels, D, H, W)``, any strides,
        e.g. a channel range of a larger buffer); returns ``out``."""
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last_3d)
        depth = x.shape[2]
        if not self.pair or depth % 2:
            return out.copy_(self._convolve(x, self.weight, self.bias, [1, 1, 1]))
        y = self._convolve(x, self.paired, self.paired_bias, [2, 1, 1])  # (B, 2k, D / 2, H, W)
        k = self.out_channels
        out.unflatten(2, (depth // 2, 2)).copy_(y.unflatten(1, (2, k)).permute(0, 2, 3, 1, 4, 5))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty((x.shape[0], self.out_channels, *x.shape[2:]), dtype=self.dtype,
                          memory_format=torch.channels_last_3d)
        return self.forward_into(x, out)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.out_channels}, dtype={self.dtype}, pair={self.pair}"
