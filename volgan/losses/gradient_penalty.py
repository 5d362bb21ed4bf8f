"""WGAN-GP gradient penalty (Gulrajani et al., 2017)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    condition: torch.Tensor | None = None,
) -> torch.Tensor:
    """``E[(||grad_x D(x_hat)||_2 - 1)^2]`` on random interpolates ``x_hat`` of real and fake.

    The gradient norm is taken over all of a sample's voxels and channels (the official RED-WGAN
    code took it over the channel axis only, which does not constrain the Lipschitz constant).
    Multiply by the penalty weight (10 in WGAN-GP, RED-WGAN and mDCSRN) yourself.

    Args:
        critic: maps a batch ``(B, C, ...)`` to scores ``(B, ...)``.
        real: real samples ``(B, C, ...)``.
        fake: generated samples, same shape (detached from the generator by this function).
        condition: for a conditional critic, concatenated to the interpolates on the channel
            axis (the penalty is taken w.r.t. the interpolated image only).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    alpha = torch.rand((real.shape[0],) + (1,) * (real.ndim - 1), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    inputs = x_hat if condition is None else torch.cat([condition, x_hat], dim=1)
    scores = critic(inputs)
    (grads,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norms = grads.flatten(1).norm(2, dim=1)
    return ((norms - 1.0) ** 2).mean()
