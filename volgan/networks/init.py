"""Weight initialisation shared by the networks."""

from __future__ import annotations

from torch import nn


def init_kaiming(module: nn.Module) -> None:
    """He-normal convolution/linear weights, zero biases, unit BatchNorm."""
    for m in module.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
