"""Sliding-window inference with host-side stitching and bounded memory.

Windows are cut from the host volume, moved to the compute device in batches, and their
weighted outputs are accumulated into one float32 buffer on the host. The sum of weights is then
rebuilt slab by slab from the window grid and divided out in place. Device memory therefore
depends on the window size and batch only, never on the volume size, and host memory is the
input plus one volume-sized float32 buffer (and one slab), whatever the volume size.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice

import numpy as np
import torch
from monai.data.utils import compute_importance_map

from volgan.inference.tiling import WindowPlan

Forward = Callable[[torch.Tensor], torch.Tensor]


def window_weights(window: tuple[int, ...], mode: str, device: torch.device) -> torch.Tensor:
    """Blending weights of one window: MONAI's Gaussian (sigma = window / 8) or constant map."""
    return compute_importance_map(window, mode=mode, sigma_scale=0.125, device=device, dtype=torch.float32)


def sliding_window(
    volume: np.ndarray,
    forward: Forward,
    plan: WindowPlan,
    *,
    prepare: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
    batch_size: int = 1,
    mode: str = "gaussian",
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Run ``forward`` over every window of ``plan`` and blend the results.

    Args:
        volume: 3D array (any real dtype) whose shape is ``plan.shape``.
        forward: ``(B, 1, *window)`` float32 tensor on ``device`` -> tensor of the same shape.
        plan: window positions (see :mod:`volgan.inference.tiling`).
        prepare: applied to each batch of windows on the host before the transfer (e.g. intensity
            normalisation), so no normalised copy of the whole volume is ever made.
        batch_size: windows per forward call.
        mode: ``"gaussian"`` or ``"constant"`` blending.
        device: where ``forward`` runs.

    Returns:
        float32 array of ``volume``'s shape.
    """
    if tuple(volume.shape) != plan.shape:
        raise ValueError(f"volume shape {volume.shape} does not match the plan's {plan.shape}")
    device = torch.device(device)
    source = torch.from_numpy(np.asarray(volume))
    if len(plan) == 1 and plan.window == plan.shape:  # one window: nothing to blend
        y = forward(prepare(source.to(torch.float32)[None, None]).to(device, non_blocking=True))
        if y.shape[2:] != plan.shape or y.shape[:2] != (1, 1):
            raise RuntimeError(f"network output {tuple(y.shape)} differs from its input {(1, 1, *plan.shape)}")
        return y[0, 0].float().cpu().numpy()
    out = torch.zeros(plan.shape, dtype=torch.float32)
    weights = window_weights(plan.window, mode, device)
    windows = plan.windows()
    while batch := list(islice(windows, max(int(batch_size), 1))):
        x = torch.stack([source[w].to(torch.float32) for w in batch])[:, None]
        x = prepare(x).to(device, non_blocking=True)
        y = forward(x)
        if y.shape != x.shape:
            raise RuntimeError(f"network output {tuple(y.shape)} differs from its input {tuple(x.shape)}")
        y = (y[:, 0].float() * weights).cpu()
        for w, yi in zip(batch, y):
            out[w] += yi
    normalise_by_weight_sum(out, plan, weights.cpu())
    return out.numpy()


def normalise_by_weight_sum(out: torch.Tensor, plan: WindowPlan, weights: torch.Tensor, slab: int = 16) -> None:
    """Divide ``out`` in place by the sum of the window weights covering each voxel, one slab of
    ``slab`` planes along the first axis at a time (never a second volume-sized buffer)."""
    wx = plan.window[0]
    for x0 in range(0, plan.shape[0], slab):
        x1 = min(x0 + slab, plan.shape[0])
        total = torch.zeros((x1 - x0, *plan.shape[1:]), dtype=torch.float32)
        for w in plan.windows():
            lo, hi = max(w[0].start, x0), min(w[0].start + wx, x1)
            if lo < hi:
                total[(slice(lo - x0, hi - x0), *w[1:])] += weights[lo - w[0].start : hi - w[0].start]
        out[x0:x1] /= total
