"""A 3x3x3 convolution computed with Winograd's F(4, 3) along depth and 3x3 2D convolutions in-plane.

Winograd's minimal filtering algorithm F(4, 3) (Lavin & Gray, "Fast algorithms for convolutional
neural networks", CVPR 2016) yields 4 outputs of a 3-tap filter from 6 products instead of 12.
Applied along the depth axis only, a 3x3x3 convolution becomes, for each tile of 4 output planes:

* 6 transformed input planes ``d = B^T [x_{4t}, ..., x_{4t+5}]`` (sums of input planes),
* 6 in-plane 3x3 convolutions ``m_i = conv2d(d_i, G_i)`` with transformed kernels
  ``G = G [w_0, w_1, w_2]`` (computed once),
* 4 output planes ``y = A^T m``.

That is 6 x 9 = 54 multiply-adds per 4 output planes instead of 4 x 27 = 108: half the FLOPs of
a direct convolution, with the arithmetic in well-optimised 2D convolutions. The transforms use
only depth-wise sums, so the algorithm works on "depth-major" tensors ``(B, D, C, H, W)``, where
each plane of a batch is one contiguous 2D image and no transposes are needed between layers.
Errors are at fp32 rounding level (1e-6 of the range per layer in our tests); 1D F(4, 3) is far
better conditioned than the 2D/3D tiles that make Winograd convolutions imprecise.

Measured on a 2-core AVX2 CPU in ONNX Runtime (64 -> 128 channels, two 64^3 windows): 1.19 s against
1.66 s for ONNX Runtime's direct 3D convolution. It only pays with enough channels (a 1 -> 16 layer
is faster directly), see :func:`worth_winograd`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# F(4, 3): y = A^T [(G g) * (B^T d)] for 6 inputs d, 3 taps g (cross-correlation, as in CNNs).
# The kernel transform G is applied once; B^T and A^T are written out as shared sums in forward():
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


class WinogradDepthConv3d(nn.Module):
    """Same function as ``conv`` (a plain 3x3x3 convolution), on depth-major ``(B, D, C, H, W)`` tensors."""

    def __init__(self, conv: nn.Conv3d):
        super().__init__()
        if not is_plain_3x3x3(conv):
            raise ValueError(f"not a 3x3x3 stride-1 zero-padded convolution: {conv}")
        self.register_buffer("kernels", transformed_kernels(conv).contiguous())  # (6, out, in, 3, 3)
        bias = conv.bias.detach().float().clone() if conv.bias is not None else None
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # only the depth is read as a number, so an ONNX export traced on one plane size serves all
        depth = x.shape[1]
        tiles = (depth + TILE - 1) // TILE  # not -(-d // 4): traced into ONNX, integer division truncates
        # zero plane before, enough after for the last tile's 6 inputs (4 * tiles + 2 planes in all)
        xp = F.pad(x, (0, 0, 0, 0, 0, 0, 1, TILE * tiles + 1 - depth))
        s = [xp[:, j : j + TILE * tiles : TILE] for j in range(6)]  # (B, tiles, C, H, W) each
        # d = B^T s, with shared partial sums
        s12, s31, s42 = s[1] + s[2], s[3] - s[1], s[4] - s[2]
        d = (
            s[0] * 4 - s[2] * 5 + s[4],
            s[3] + s[4] - s12 * 4,
            s[4] - s[3] + (s[1] - s[2]) * 4,
            s42 + s31 * 2,
            s42 - s31 * 2,
            s[1] * 4 - s[3] * 5 + s[5],
        )
        # A^T has ones in its second column, so the bias goes into m_1 and reaches every output once
        m = [
            F.conv2d(di.flatten(0, 1), self.kernels[i], self.bias if i == 1 else None, padding=1).unflatten(0, (-1, tiles))
            for i, di in enumerate(d)
        ]
        m12, m21, m34, m43 = m[1] + m[2], m[1] - m[2], m[3] + m[4], m[3] - m[4]
        y = torch.stack((m[0] + m12 + m34, m21 + m43 * 2, m12 + m34 * 4, m21 + m43 * 8 + m[5]), dim=2)
        y = y.flatten(1, 2)  # (B, 4 * tiles, out, H, W)
        return y[:, :depth] if TILE * tiles != depth else y
