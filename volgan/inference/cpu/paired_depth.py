"""A narrow 3x3x3 convolution computed two output depths at a time, for fast mode on the CPU.

oneDNN's CPU convolutions keep 16 output channels per AVX-512 register of float32 sums, so a
layer with fewer (mDCSRN's growth rate is 8 in the small preset) leaves most of each register
unused. Output depths ``2i`` and ``2i + 1`` read input depths ``2i - 1 .. 2i + 2``: both are one
convolution with a 4x3x3 kernel, stride 2 along depth and twice the output channels (the first
half: the kernel at depths 0-2 and zeros at 3; the second: zeros at 0 and the kernel at 1-3). That
is 4/3 of the multiply-adds, in registers that are full. The two halves are interleaved back along depth by the copy that writes the
result into its destination (:meth:`PairedDepthConv3d.forward_into`), or not at all: a dense
block keeps the paired output as one of its parts (:meth:`PairedDepthConv3d.part`,
:mod:`volgan.inference.cpu.dense_parts`).
"""

from __future__ import annotations

import torch
from torch import nn

from volgan.inference.cpu.dense_parts import Part
from volgan.inference.cpu.fused_pointwise import PointwiseConv3d
from volgan.inference.cpu.winograd import is_plain_3x3x3

# fewer output channels than one AVX-512 register of float32 sums
PAIRED_BELOW_CHANNELS = 16


def worth_pairing(conv: nn.Module) -> bool:
    return is_plain_3x3x3(conv) and conv.out_channels < PAIRED_BELOW_CHANNELS


def paired_convolution(conv: nn.Conv3d) -> nn.Conv3d:
    """The 4x3x3, depth-stride-2 convolution giving ``conv``'s even output depths in its first
    ``out_channels`` outputs and the odd ones in the rest (module docstring)."""
    k, c = conv.out_channels, conv.in_channels
    paired = nn.Conv3d(c, 2 * k, (4, 3, 3), stride=(2, 1, 1), padding=1, bias=conv.bias is not None,
                       device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        paired.weight.zero_()
        paired.weight[:k, :, :3] = conv.weight
        paired.weight[k:, :, 1:] = conv.weight
        if conv.bias is not None:
            paired.bias.copy_(conv.bias.repeat(2))
    return paired.eval()


class PairedDepthConv3d(nn.Module):
    """A plain 3x3x3 convolution (stride 1, zero padding 1) in ``dtype`` through oneDNN
    (:class:`~volgan.inference.cpu.fused_pointwise.PointwiseConv3d`), channels-last 3D, computed two
    output depths at a time when ``pair`` (default: fewer than 16 output channels) and the input's
    depth is even; :meth:`forward_into` writes it into a given tensor."""

    def __init__(self, conv: nn.Conv3d, dtype: torch.dtype, pair: bool | None = None):
        super().__init__()
        if not is_plain_3x3x3(conv):
            raise ValueError(f"PairedDepthConv3d needs a 3x3x3 convolution with stride 1 and padding 1, got {conv}")
        self.dtype, self.out_channels = dtype, conv.out_channels
        self.pair = worth_pairing(conv) if pair is None else bool(pair)
        self.plain = PointwiseConv3d(conv, dtype)
        self.paired = PointwiseConv3d(paired_convolution(conv), dtype) if self.pair else None

    def forward_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Write the convolution of ``x`` into ``out`` (``(B, out_channels, D, H, W)``, any strides,
        e.g. a channel range of a larger buffer); returns ``out``."""
        return self.part(x).write(out)

    def part(self, x: torch.Tensor) -> Part:
        """The convolution of ``x`` as a :class:`~volgan.inference.cpu.dense_parts.Part`: depth-paired as
        computed (no interleaving copy) when it runs two depths at a time."""
        if self.paired is None or x.shape[2] % 2:
            return Part(self.plain(x))
        return Part(self.paired(x), paired=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty((x.shape[0], self.out_channels, *x.shape[2:]), dtype=self.dtype,
                          memory_format=torch.channels_last_3d)
        return self.forward_into(x, out)

    def extra_repr(self) -> str:
        return f"pair={self.pair}"
