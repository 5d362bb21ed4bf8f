"""3D conditional GAN for full-dose PET estimation from low-dose PET (Wang et al., NeuroImage 2018).

The generator is a 3D U-Net: an encoder of 4x4x4 stride-2 convolutions with BatchNorm and
LeakyReLU(0.2) (no BatchNorm on the first layer), a decoder of 4x4x4 stride-2 transposed
convolutions with BatchNorm and ReLU, and skip connections that concatenate each encoder level
to the decoder level of the same size. The discriminator is a conditional 3D PatchGAN: it sees
the low-dose image and a full-dose image (real or estimated) stacked on the channel axis and
returns one logit per receptive-field patch. The paper trains the generator with
``L1 + lambda * adversarial`` written as ``adversarial + lambda * L1`` with lambda = 300.

The paper's progressive refinement ("concatenated 3D c-GANs") chains generators: the second
refines the first one's estimate. :class:`ConcatenatedGenerator` provides it; train the first
stage, then the next one with the earlier stages frozen (:meth:`ConcatenatedGenerator.freeze_stages`).

Differences from the paper, each optional: ``residual=True`` adds the input to the U-Net's output
(the network learns the noise to remove; with the last layer zero-initialised the untrained
generator is the identity, which trains much faster on a CPU budget), and inputs of any size are
padded (edge values) to a multiple of ``2**depth`` and cropped back, so whole-volume sliding
windows of any shape work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import List, Tuple

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from volgan.networks.init import init_kaiming

PRESETS: dict[str, tuple[int, ...]] = {
    # encoder widths of four stride-2 levels, as we read the paper: 64-128-256-512
    "paper": (64, 128, 256, 512),
    # quarter width for CPU training
    "small": (16, 32, 64, 128),
}


def _down(cin: int, cout: int, norm: bool, inplace: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv3d(cin, cout, kernel_size=4, stride=2, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm3d(cout))
    layers.append(nn.LeakyReLU(0.2, inplace=inplace))
    return nn.Sequential(*layers)


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose3d(cin, cout, kernel_size=4, stride=2, padding=1, bias=False), nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    )


def _widths(preset: str, channels: Sequence[int] | None) -> tuple[int, ...]:
    if channels is None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[preset]
    if len(channels) < 2:
        raise ValueError(f"the U-Net needs at least two levels; got channels={tuple(channels)}")
    return tuple(int(c) for c in channels)


@torch.fx.wrap
def pad_to_multiple(x: torch.Tensor, multiple: int) -> Tuple[torch.Tensor, List[int]]:
    """Edge-pad the spatial axes of ``(B, C, D, H, W)`` to a multiple of ``multiple`` (centred);
    returns the padded tensor and the pads in ``F.pad`` order (last axis first).

    A leaf of ``torch.fx`` traces (its arithmetic is on shapes), so the rest of the generator
    traces and its BatchNorms fold at inference."""
    pads: List[int] = []
    for axis in range(x.dim() - 1, 1, -1):
        extra = (multiple - x.shape[axis] % multiple) % multiple
        pads += [extra // 2, extra - extra // 2]
    return (F.pad(x, pads, mode="replicate") if sum(pads) > 0 else x), pads


@torch.fx.wrap
def crop_padding(y: torch.Tensor, pads: List[int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple` on ``y`` (same spatial shape as the padded input)."""
    return y[:, :, pads[4] : y.shape[2] - pads[5], pads[2] : y.shape[3] - pads[3], pads[0] : y.shape[4] - pads[1]]


class PetUNetGenerator(nn.Module):
    """3D U-Net generator of the low-dose PET cGAN.

    Input and output are ``(B, 1, D, H, W)`` in the same normalised PET units (e.g. SUV / 10).

    Args:
        preset: ``"paper"`` (64-128-256-512) or ``"small"`` (16-32-64-128). Ignored when
            ``channels`` is given.
        channels: explicit encoder widths, one per stride-2 level.
        residual: add the input to the output (identity start, see the module docstring).
        in_channels: image channels.

    Examples::

        >>> net = PetUNetGenerator("small")
        >>> net(torch.rand(1, 1, 20, 33, 16)).shape
        torch.Size([1, 1, 20, 33, 16])
    """

    def __init__(
        self, preset: str = "paper", channels: Sequence[int] | None = None, residual: bool = False, in_channels: int = 1
    ):
        super().__init__()
        widths = _widths(preset, channels)
        self.channels, self.residual = widths, bool(residual)
        self.multiple = 2 ** len(widths)
        self.encoder = nn.ModuleList()
        cin = in_channels
        for level, c in enumerate(widths):
            # in-place activations: none of their inputs is needed again (nor by autograd), and a
            # whole-volume pass allocates (and page-faults in) fewer full-size tensors
            self.encoder.append(_down(cin, c, norm=level > 0, inplace=True))
            cin = c
        # decoder: from the bottleneck up; every level but the last concatenates its skip
        self.decoder = nn.ModuleList()
        for level in range(len(widths) - 1, 0, -1):
            cin_up = widths[level] if level == len(widths) - 1 else 2 * widths[level]
            self.decoder.append(_up(cin_up, widths[level - 1]))
        self.head = nn.ConvTranspose3d(2 * widths[0], in_channels, kernel_size=4, stride=2, padding=1)
        init_kaiming(self)
        if self.residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, pads = pad_to_multiple(x, self.multiple)
        skips: List[torch.Tensor] = []
        y = padded
        for down in self.encoder:
            y = down(y)
            skips.append(y)
        skips.pop()  # the bottleneck feeds the decoder directly
        for up in self.decoder:
            y = torch.cat([up(y), skips.pop()], dim=1)
        y = self.head(y)
        if self.residual:
            y += padded
        return crop_padding(F.relu_(y), pads)


class ConcatenatedGenerator(nn.Module):
    """Progressive refinement: ``stages`` U-Net generators applied one after the other.

    Args:
        stages: number of chained generators (the paper: 2).
        preset, channels, residual: passed to every :class:`PetUNetGenerator`.

    Examples::

        >>> net = ConcatenatedGenerator(2, preset="small")
        >>> net(torch.rand(1, 1, 32, 32, 32)).shape
        torch.Size([1, 1, 32, 32, 32])
    """

    def __init__(self, stages: int = 2, preset: str = "paper", channels: Sequence[int] | None = None, residual: bool = False):
        super().__init__()
        if stages < 1:
            raise ValueError(f"stages must be at least 1, got {stages}")
        self.stages = nn.ModuleList(PetUNetGenerator(preset, channels, residual) for _ in range(int(stages)))
        self.frozen = 0

    def freeze_stages(self, n: int) -> "ConcatenatedGenerator":
        """Freeze the first ``n`` stages (weights and BatchNorm statistics) to train the next one."""
        for stage in self.stages[:n]:
            stage.eval()
            stage.requires_grad_(False)
        self.frozen = int(n)
        return self

    def train(self, mode: bool = True) -> "ConcatenatedGenerator":
        super().train(mode)
        for stage in self.stages[: self.frozen]:
            stage.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x


def pet_generator(
    stages: int = 1, preset: str = "paper", channels: Sequence[int] | None = None, residual: bool = False
) -> PetUNetGenerator | ConcatenatedGenerator:
    """The PET generator with ``stages`` U-Nets: a :class:`PetUNetGenerator` for one (its state
    dict has no stage prefix), a :class:`ConcatenatedGenerator` for more.

    Examples::

        >>> type(pet_generator(1, "small")).__name__, type(pet_generator(2, "small")).__name__
        ('PetUNetGenerator', 'ConcatenatedGenerator')
    """
    if int(stages) == 1:
        return PetUNetGenerator(preset, channels, residual)
    return ConcatenatedGenerator(stages, preset, channels, residual)


class PetPatchDiscriminator(nn.Module):
    """Conditional 3D PatchGAN: ``D(cat(low_dose, full_dose))`` -> one logit per patch.

    Three 4x4x4 stride-2 convolutions (LeakyReLU 0.2, BatchNorm after the first), one 4x4x4
    stride-1 convolution and a 4x4x4 stride-1 convolution to one channel of logits (for
    :class:`~volgan.losses.AdversarialLoss` ``"bce"``).

    Args:
        channels: widths of the four hidden convolutions (the paper's: 64-128-256-512).
        in_channels: channels of the stacked pair (2: condition and image).

    Examples::

        >>> d = PetPatchDiscriminator((8, 16, 32, 64))
        >>> d(torch.rand(2, 2, 32, 32, 32)).shape
        torch.Size([2, 1, 2, 2, 2])
    """

    def __init__(self, channels: Sequence[int] = (64, 128, 256, 512), in_channels: int = 2):
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"the PatchGAN has four hidden convolutions; got channels={tuple(channels)}")
        c1, c2, c3, c4 = (int(c) for c in channels)
        self.features = nn.Sequential(
            _down(in_channels, c1, norm=False),
            _down(c1, c2, norm=True),
            _down(c2, c3, norm=True),
            nn.Conv3d(c3, c4, kernel_size=4, stride=1, padding=1, bias=False),
            nn.BatchNorm3d(c4),
            nn.LeakyReLU(0.2),
            nn.Conv3d(c4, 1, kernel_size=4, stride=1, padding=1),
        )
        init_kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
