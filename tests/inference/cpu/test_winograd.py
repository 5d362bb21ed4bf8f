"""Winograd F(4, 3) along depth: the kernel transform and which convolutions take it."""

from __future__ import annotations

import torch
from torch import nn

from volgan.inference.cpu.winograd import TILE, is_plain_3x3x3, transformed_kernels, worth_winograd

# the input and output transforms that kernels/winograd_depth.c writes out as sums
B_T = torch.tensor([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=torch.float64)
A_T = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                   dtype=torch.float64)


def test_transformed_kernels_give_a_tile_of_the_depth_convolution():
    """For every in-plane tap, A^T [(G w) * (B^T d)] is the 3-tap correlation of the 6 input
    planes d with the kernel's depth column w: TILE output planes."""
    torch.manual_seed(0)
    conv = nn.Conv3d(2, 3, 3, padding=1)
    kernels = transformed_kernels(conv).double()  # (6, out, in, 3, 3)
    assert kernels.shape == (6, 3, 2, 3, 3) and transformed_kernels(conv).dtype == torch.float32
    d = torch.randn(6, dtype=torch.float64)
    weight = conv.weight.detach().double()
    for o, i, h, w in [(0, 0, 0, 0), (2, 1, 1, 2), (1, 0, 2, 1)]:
        taps = weight[o, i, :, h, w]
        expected = torch.stack([(d[t:t + 3] * taps).sum() for t in range(TILE)])
        out = A_T @ (kernels[:, o, i, h, w] * (B_T @ d))
        assert torch.allclose(out, expected, atol=1e-6 * float(d.abs().max() * taps.abs().max()))


def test_only_plain_3x3x3_convolutions_with_enough_channels_take_it():
    for conv in (nn.Conv3d(8, 8, 3, stride=2, padding=1), nn.Conv3d(8, 8, 3), nn.Conv3d(8, 8, 5, padding=2),
                 nn.Conv3d(8, 8, 3, padding=1, groups=2), nn.Conv3d(8, 8, 3, padding=1, padding_mode="reflect"),
                 nn.Conv3d(8, 8, 3, padding=1, dilation=2), nn.ConvTranspose3d(8, 8, 3, padding=1)):
        assert not is_plain_3x3x3(conv) and not worth_winograd(conv)
    assert is_plain_3x3x3(nn.Conv3d(1, 16, 3, padding=1))
    assert not worth_winograd(nn.Conv3d(1, 16, 3, padding=1))  # too few input channels for the transforms
    assert not worth_winograd(nn.Conv3d(8, 8, 3, padding=1))  # 64 input-output pairs
    assert worth_winograd(nn.Conv3d(8, 16, 3, padding=1)) and worth_winograd(nn.Conv3d(64, 64, 3, padding=1))

