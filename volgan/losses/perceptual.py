"""Perceptual (feature-space) loss with a frozen feature network loaded from a local file.

Nothing is downloaded. Two feature networks are provided:

- :class:`Conv3dFeatures`: a small 3D convolutional encoder. volgan's offline default: its
  weights are trained by ``data_scripts/train_feature_net.py`` as the encoder of a 3D
  autoencoder on the *training* volumes only, and shipped next to each bundle's model.
- :class:`SliceVgg19Features`: the VGG-19 convolutional stack used by RED-WGAN, applied slice by
  slice. It takes a state dict in torchvision's ``vgg19().features`` layout from a local file
  (e.g. ImageNet weights a user has saved on a machine with internet access).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# torchvision's VGG-19 "E" configuration; "M" is a 2x2 max-pool.
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


class Conv3dFeatures(nn.Module):
    """Small 3D encoder: ``len(channels)`` blocks of 3x3x3 conv + LeakyReLU, stride 2 after the first.

    Args:
        channels: block widths.

    Examples::

        >>> Conv3dFeatures()(torch.rand(1, 1, 16, 16, 16)).shape
        torch.Size([1, 64, 4, 4, 4])
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 64)):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for i, c in enumerate(channels):
            layers += [nn.Conv3d(cin, int(c), 3, stride=1 if i == 0 else 2, padding=1), nn.LeakyReLU(0.2)]
            cin = int(c)
        self.layers = nn.Sequential(*layers)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SliceVgg19Features(nn.Module):
    """VGG-19 convolutional features applied to each axial slice of a volume.

    A grey value in [0, 1] is replicated to RGB and normalised with ImageNet statistics.
    Features of all slices are stacked on the batch axis.

    Args:
        n_layers: how many modules of ``vgg19().features`` to keep (36 = all; RED-WGAN used all).
    """

    def __init__(self, n_layers: int = 36):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                cin = int(v)
        self.features = nn.Sequential(*layers[:n_layers])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        slices = x.permute(0, 2, 1, 3, 4).reshape(b * d, c, h, w).expand(-1, 3, -1, -1)
        return self.features((slices - self.mean) / self.std)

    def load_torchvision_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load ``vgg19().features.state_dict()`` (keys ``"0.weight"``...) or a full vgg19 state dict."""
        prefix = "features." if any(k.startswith("features.") for k in state) else ""
        own = {k: v for k, v in state.items() if k.startswith(prefix)}
        own = {k[len(prefix) :]: v for k, v in own.items()}
        keep = {k: v for k, v in own.items() if int(k.split(".")[0]) < len(self.features)}
        self.features.load_state_dict(keep, strict=True)


def load_feature_net(net: nn.Module, weights_path: str | os.PathLike) -> nn.Module:
    """Load weights into a feature network from a local file (``weights_only=True``) and freeze it."""
    weights_path = os.fspath(weights_path)
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(
            f"{weights_path}: perceptual feature weights not found; build them with "
            "`python data_scripts/train_feature_net.py` or pass another local file"
        )
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    if isinstance(net, SliceVgg19Features):
        net.load_torchvision_state(state)
    else:
        net.load_state_dict(state)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class PerceptualLoss(nn.Module):
    """Mean squared distance between frozen features of prediction and target.

    Args:
        feature_net: a feature network (:class:`Conv3dFeatures` or :class:`SliceVgg19Features`).
        weights_path: local weights file for it; ``None`` only if ``feature_net`` is already loaded.

    The feature network stays in eval mode and receives no gradient updates; gradients flow to
    the prediction only.
    """

    def __init__(self, feature_net: nn.Module, weights_path: str | os.PathLike | None = None):
        super().__init__()
        self.feature_net = load_feature_net(feature_net, weights_path) if weights_path is not None else feature_net
        for p in self.feature_net.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.feature_net.eval()
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_features = self.feature_net(target)
        return F.mse_loss(self.feature_net(pred), target_features)
