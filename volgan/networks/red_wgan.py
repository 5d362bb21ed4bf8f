"""RED-WGAN: residual encoder-decoder generator and WGAN critic (Ran et al., MedIA 2019).

Follows the paper and its official PyTorch code: four 3x3x3 stride-1 convolutions
(BN + LeakyReLU) encode 1 -> 32 -> 64 -> 128 -> 256 channels; four mirrored 3x3x3 convolutions
decode 256 -> 128 -> 64 -> 32 -> 1, each adding the output of the mirrored encoder layer (the
last one adds the network input) before BN + LeakyReLU (a final ReLU for the output layer).
The critic has three 3x3x3 convolutions (32/64/128, LeakyReLU, no normalisation, as WGAN-GP
requires) and one linear layer over the flattened feature map of a fixed-size patch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from volgan.networks.init import init_kaiming

PRESETS: dict[str, tuple[int, int, int, int]] = {
    # the published widths: 2,326,273 generator parameters
    "paper": (32, 64, 128, 256),
    # half width for CPU training (582,529 parameters, ~4x fewer FLOPs per voxel)
    "small": (16, 32, 64, 128),
}


def _conv(cin: int, cout: int) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, kernel_size=3, stride=1, padding=1)


def _bn_lrelu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm3d(channels), nn.LeakyReLU(0.01))


class RedWganGenerator(nn.Module):
    """Residual encoder-decoder generator of RED-WGAN.

    Fully convolutional, so any input size works; input and output are ``(B, 1, D, H, W)`` in
    the same (normalised) intensity units.

    Args:
        preset: ``"paper"`` (32-64-128-256, 2,326,273 parameters) or ``"small"``
            (16-32-64-128, 582,529 parameters). Ignored when ``channels`` is given.
        channels: explicit widths of the four encoder layers.
        in_channels: image channels (1 for MR).

    Examples::

        >>> net = RedWganGenerator("small")
        >>> net(torch.rand(2, 1, 6, 32, 32)).shape
        torch.Size([2, 1, 6, 32, 32])
    """

    def __init__(self, preset: str = "paper", channels: Sequence[int] | None = None, in_channels: int = 1):
        super().__init__()
        if channels is None:
            if preset not in PRESETS:
                raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
            channels = PRESETS[preset]
        if len(channels) != 4:
            raise ValueError(f"RED-WGAN has four encoder layers; got channels={tuple(channels)}")
        c1, c2, c3, c4 = (int(c) for c in channels)
        self.channels = (c1, c2, c3, c4)
        self.enc1 = nn.Sequential(_conv(in_channels, c1), _bn_lrelu(c1))
        self.enc2 = nn.Sequential(_conv(c1, c2), _bn_lrelu(c2))
        self.enc3 = nn.Sequential(_conv(c2, c3), _bn_lrelu(c3))
        self.enc4 = nn.Sequential(_conv(c3, c4), _bn_lrelu(c4))
        self.dec4, self.post4 = _conv(c4, c3), _bn_lrelu(c3)
        self.dec3, self.post3 = _conv(c3, c2), _bn_lrelu(c2)
        self.dec2, self.post2 = _conv(c2, c1), _bn_lrelu(c1)
        self.dec1 = _conv(c1, in_channels)
        self.out_act = nn.ReLU()
        init_kaiming(self)
        # Zero the last convolution so that the untrained generator is the identity on non-negative
        # images (ReLU(x)): training then only learns the noise residual. The official code uses
        # He initialisation everywhere; this converges much faster on a CPU budget.
        nn.init.zeros_(self.dec1.weight)
        nn.init.zeros_(self.dec1.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        y = self.post4(self.dec4(e4) + e3)
        y = self.post3(self.dec3(y) + e2)
        y = self.post2(self.dec2(y) + e1)
        return self.out_act(self.dec1(y) + x)


class RedWganCritic(nn.Module):
    """WGAN critic of RED-WGAN: three 3x3x3 convolutions and a linear score.

    No batch normalisation (it would break the per-sample gradient penalty).

    Args:
        patch_size: ``(D, H, W)`` of the training patches; the linear layer is sized for it
            (the paper: ``(6, 32, 32)``, 786,433 linear + 277,568 conv parameters).
        channels: widths of the three convolutions.
        in_channels: image channels.

    Examples::

        >>> critic = RedWganCritic(patch_size=(6, 32, 32))
        >>> critic(torch.rand(2, 1, 6, 32, 32)).shape
        torch.Size([2, 1])
    """

    def __init__(
        self, patch_size: Sequence[int] = (6, 32, 32), channels: Sequence[int] = (32, 64, 128), in_channels: int = 1
    ):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for c in channels:
            layers += [_conv(cin, int(c)), nn.LeakyReLU(0.01)]
            cin = int(c)
        self.features = nn.Sequential(*layers)
        self.patch_size = [int(s) for s in patch_size]
        n_flat = cin
        for s in self.patch_size:
            n_flat *= s
        self.score = nn.Linear(n_flat, 1)
        init_kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if list(x.shape[2:]) != self.patch_size:
            raise ValueError(f"critic was built for patches of {self.patch_size}, got {list(x.shape[2:])}")
        return self.score(torch.flatten(self.features(x), 1))
