"""Adversarial losses for a critic/discriminator and the generator: WGAN, BCE and LSGAN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("wgan", "bce", "lsgan")


class AdversarialLoss(nn.Module):
    """Critic and generator sides of an adversarial loss.

    ``kind``:
      - ``"wgan"``: Wasserstein (Arjovsky et al.); the critic outputs unbounded scores. Critic
        loss ``E[D(fake)] - E[D(real)]``, generator loss ``-E[D(fake)]``. Pair it with
        :func:`volgan.losses.gradient_penalty`.
      - ``"bce"``: the original GAN loss on logits (``binary_cross_entropy_with_logits``).
      - ``"lsgan"``: least squares (Mao et al.), targets 1 for real and 0 for fake.

    Examples::

        >>> adv = AdversarialLoss("wgan")
        >>> d_loss = adv.critic(torch.randn(4, 1), torch.randn(4, 1))
        >>> g_loss = adv.generator(torch.randn(4, 1))
    """

    def __init__(self, kind: str = "wgan"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown adversarial loss {kind!r}; choose one of {KINDS}")
        self.kind = kind

    def critic(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        """Loss minimised by the critic/discriminator."""
        if self.kind == "wgan":
            return fake_scores.mean() - real_scores.mean()
        if self.kind == "bce":
            return 0.5 * (
                F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
                + F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores))
            )
        return 0.5 * (F.mse_loss(real_scores, torch.ones_like(real_scores)) + F.mse_loss(fake_scores, torch.zeros_like(fake_scores)))

    def generator(self, fake_scores: torch.Tensor) -> torch.Tensor:
        """Loss minimised by the generator."""
        if self.kind == "wgan":
            return -fake_scores.mean()
        if self.kind == "bce":
            return F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))
        return F.mse_loss(fake_scores, torch.ones_like(fake_scores))
