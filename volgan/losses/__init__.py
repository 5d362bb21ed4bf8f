"""Losses: content (use ``torch.nn.MSELoss``/``L1Loss``), adversarial, gradient penalty, perceptual."""

from __future__ import annotations

from volgan.losses.adversarial import AdversarialLoss
from volgan.losses.gradient_penalty import gradient_penalty
from volgan.losses.perceptual import Conv3dFeatures, PerceptualLoss, SliceVgg19Features, load_feature_net

__all__ = [
    "AdversarialLoss",
    "Conv3dFeatures",
    "PerceptualLoss",
    "SliceVgg19Features",
    "gradient_penalty",
    "load_feature_net",
]
