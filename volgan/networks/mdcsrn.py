"""mDCSRN: multi-level densely connected super-resolution network and its WGAN-GP critic.

Chen et al., "Efficient and accurate MRI super-resolution using a generative adversarial network
and 3D multi-level densely connected network", MICCAI 2018.

Generator ("b4u4"): a 3x3x3 convolution to ``2k`` feature maps, then ``blocks`` densely connected
blocks of ``units`` units; every unit is BN -> ELU -> 3x3x3 convolution adding ``k`` maps to the
block's running concatenation. After each block a 1x1x1 compressor brings the concatenation back to
``2k`` maps, which feed the next block. Multi-level connections: the first convolution's output and
every compressor's output are concatenated into the 1x1x1 reconstruction layer. The input and the
output are on the same grid (the low-resolution image is interpolated onto the target grid first).

Critic: SRGAN's discriminator in 3D, with LayerNorm instead of BatchNorm as WGAN-GP requires (a
per-sample normalisation does not couple the samples of a batch, so the per-sample gradient penalty
stays valid): 3x3x3 convolutions with 64, 64, 128, 128, 256, 256, 512, 512 features, every second
one with stride 2, LeakyReLU(0.2), then a 1024-unit fully connected layer, LeakyReLU and one output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from volgan.networks.init import init_kaiming

# (k, blocks, units per block)
GENERATOR_PRESETS: dict[str, tuple[int, int, int]] = {
    # the published b4u4 with growth rate k = 16
    "paper": (16, 4, 4),
    # growth rate 8 for CPU training: ~4x fewer multiply-adds per voxel
    "small": (8, 4, 4),
}

# (convolution widths of the four stride pairs, width of the fully connected layer)
CRITIC_PRESETS: dict[str, tuple[tuple[int, int, int, int], int]] = {
    "paper": ((64, 128, 256, 512), 1024),
    "small": ((16, 32, 64, 128), 256),
}


class DenseUnit(nn.Module):
    """BN -> ELU -> 3x3x3 convolution producing ``growth`` new feature maps."""

    def __init__(self, in_channels: int, growth: int):
        super().__init__()
        self.norm = nn.BatchNorm3d(in_channels)
        self.act = nn.ELU()
        self.conv = nn.Conv3d(in_channels, growth, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.act(self.norm(x)))


class DenseBlock(nn.Module):
    """``units`` dense units; each sees the concatenation of the block input and all earlier units."""

    def __init__(self, in_channels: int, growth: int, units: int):
        super().__init__()
        self.units = nn.ModuleList(DenseUnit(in_channels + i * growth, growth) for i in range(units))
        self.out_channels = in_channels + units * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x
        for unit in self.units:
            features = torch.cat([features, unit(features)], dim=1)
        return features


class MdcsrnGenerator(nn.Module):
    """The mDCSRN generator: same grid in and out, any spatial size.

    Args:
        preset: ``"paper"`` (k=16, b4u4, 352,129 parameters) or ``"small"`` (k=8, b4u4,
            90,849 parameters). Ignored when ``k`` is given.
        k: growth rate (the first convolution and each compressor give ``2k`` maps).
        blocks, units: dense blocks and units per block (the paper: 4 and 4).
        in_channels: image channels.
        global_residual: add the input to the reconstruction (``y = x + f(x)``) and start the
            reconstruction layer at zero, so the untrained network is the identity (the
            interpolated input). Not in the paper; it makes training on a CPU budget converge
            much faster. ``False`` gives the published network exactly.

    Examples::

        >>> net = MdcsrnGenerator("small")
        >>> net(torch.rand(2, 1, 12, 16, 20)).shape
        torch.Size([2, 1, 12, 16, 20])
    """

    def __init__(
        self,
        preset: str = "paper",
        k: int | None = None,
        blocks: int | None = None,
        units: int | None = None,
        in_channels: int = 1,
        global_residual: bool = True,
    ):
        super().__init__()
        if preset not in GENERATOR_PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(GENERATOR_PRESETS)}")
        pk, pb, pu = GENERATOR_PRESETS[preset]
        k, blocks, units = int(k or pk), int(blocks or pb), int(units or pu)
        if min(k, blocks, units) < 1:
            raise ValueError(f"k, blocks and units must be >= 1, got {(k, blocks, units)}")
        self.k, self.n_blocks, self.n_units, self.global_residual = k, blocks, units, bool(global_residual)
        self.first = nn.Conv3d(in_channels, 2 * k, kernel_size=3, padding=1)
        self.blocks = nn.ModuleList()
        self.compressors = nn.ModuleList()
        for _ in range(blocks):
            block = DenseBlock(2 * k, k, units)
            self.blocks.append(block)
            self.compressors.append(nn.Conv3d(block.out_channels, 2 * k, kernel_size=1))
        self.reconstruction = nn.Conv3d(2 * k * (blocks + 1), in_channels, kernel_size=1)
        init_kaiming(self)
        if self.global_residual:
            nn.init.zeros_(self.reconstruction.weight)
            nn.init.zeros_(self.reconstruction.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.first(x)
        levels = [features]
        for block, compressor in zip(self.blocks, self.compressors):
            features = compressor(block(features))
            levels.append(features)
        y = self.reconstruction(torch.cat(levels, dim=1))
        return x + y if self.global_residual else y


class MdcsrnCritic(nn.Module):
    """WGAN-GP critic of mDCSRN-GAN for fixed-size patches.

    LayerNorm over (C, D, H, W) of each sample is implemented as ``GroupNorm(1, C)`` (one group:
    the same statistics; the learnable scale and shift are per channel instead of per element, so
    the layer does not depend on the patch size).

    Args:
        patch_size: spatial size of the training patches (each side divisible by 16).
        preset: ``"paper"`` (64->512 features, FC 1024) or ``"small"`` (16->128, FC 256).
        in_channels: image channels.

    Examples::

        >>> critic = MdcsrnCritic(patch_size=(32, 32, 32), preset="small")
        >>> critic(torch.rand(2, 1, 32, 32, 32)).shape
        torch.Size([2, 1])
    """

    def __init__(self, patch_size: Sequence[int] = (64, 64, 64), preset: str = "paper", in_channels: int = 1):
        super().__init__()
        if preset not in CRITIC_PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(CRITIC_PRESETS)}")
        widths, fc = CRITIC_PRESETS[preset]
        self.patch_size = [int(s) for s in patch_size]
        if len(self.patch_size) != 3 or any(s % 16 or s <= 0 for s in self.patch_size):
            raise ValueError(f"patch_size must be three positive multiples of 16, got {tuple(patch_size)}")
        layers: list[nn.Module] = [nn.Conv3d(in_channels, widths[0], 3, padding=1), nn.LeakyReLU(0.2)]
        cin = widths[0]
        for i, width in enumerate(widths):
            if i > 0:  # the first stride-1 convolution of a pair (the very first one has no norm)
                layers += [nn.Conv3d(cin, width, 3, padding=1), nn.GroupNorm(1, width), nn.LeakyReLU(0.2)]
            layers += [nn.Conv3d(width, width, 3, stride=2, padding=1), nn.GroupNorm(1, width), nn.LeakyReLU(0.2)]
            cin = width
        self.features = nn.Sequential(*layers)
        n_flat = cin * (self.patch_size[0] // 16) * (self.patch_size[1] // 16) * (self.patch_size[2] // 16)
        self.head = nn.Sequential(nn.Linear(n_flat, fc), nn.LeakyReLU(0.2), nn.Linear(fc, 1))
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, a=0.2)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if list(x.shape[2:]) != self.patch_size:
            raise ValueError(f"critic was built for patches of {self.patch_size}, got {list(x.shape[2:])}")
        return self.head(torch.flatten(self.features(x), 1))
