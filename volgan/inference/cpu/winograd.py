"""Winograd's F(4, 3) along depth for 3x3x3 convolutions: the transforms and when they pay.

Winograd's minimal filtering algorithm F(4, 3) (Lavin & Gray, "Fast algorithms for convolutional
neural networks", CVPR 2016) yields 4 outputs of a 3-tap filter from 6 products instead of 12.
Applied along the depth axis only, a 3x3x3 convolution becomes, for each tile of 4 output planes:

* 6 transformed input planes ``d = B^T [x_{4t}, ..., x_{4t+5}]`` (sums of input planes),
* 6 in-plane 3x3 convolutions ``m_i = conv2d(d_i, G_i)`` with transformed kernels
  ``G = G [w_0, w_1, w_2]`` (computed once, :func:`transformed_kernels`),
* 4 output planes ``y = A^T m``.

That is 6 x 9 = 54 multiply-adds per 4 output planes instead of 4 x 27 = 108: half the FLOPs of
a direct convolution, with the arithmetic in well-optimised 2D convolutions. Errors are at fp32
rounding level; 1D F(4, 3) is far better conditioned than the 2D/3D tiles that make Winograd
convolutions imprecise. The native forms run it with C transforms
(:mod:`volgan.inference.cpu.native_winograd`).
"""

from __future__ import annotations

import torch
from torch import nn

# F(4, 3): y = A^T [(G g) * (B^T d)] for 6 inputs d, 3 taps g (cross-correlation, as in CNNs).
# The kernel transform G is applied once; B^T and A^T are written out in kernels/winograd_depth.c:
#   B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
#          [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
#   A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
     (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))
TILE = 4


def is_plain_3x3x3(conv: nn.Module) -> bool:
    """A 3x3x3 ``Conv3d`` with stride 1, zero padding 1, no dilation and no groups."""
    return (
        isinstance(conv, nn.Conv3d) and tuple(conv.kernel_size) == (3, 3, 3) and tuple(conv.stride) == (1, 1, 1)
        and tuple(conv.padding) == (1, 1, 1) and tuple(conv.dilation) == (1, 1, 1) and conv.groups == 1
        and conv.padding_mode == "zeros"
    )


def worth_winograd(conv: nn.Conv3d) -> bool:
    """Whether the Winograd form is expected to be faster than a direct convolution.

    The transforms are memory passes over the input and output; they are amortised when the
    convolution has enough channels: at least 8 on each side and 128 input-output pairs
    (``benchmarks/README.md``).
    """
    return is_plain_3x3x3(conv) and conv.in_channels * conv.out_channels >= 128 and min(conv.in_channels, conv.out_channels) >= 8


def transformed_kernels(conv: nn.Conv3d) -> torch.Tensor:
    """The six in-plane kernels ``G [w_0, w_1, w_2]`` of a 3x3x3 convolution, ``(6, out, in, 3, 3)``
    float32 (computed in float64)."""
    kernels = torch.einsum("tk,oikhw->toihw", torch.tensor(G, dtype=torch.float64), conv.weight.detach().double())
    return kernels.float()

