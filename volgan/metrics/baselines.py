"""Classical denoising baselines to compare a learned model against.

dipy (non-local means) and bm4d are optional dependencies: ``pip install volgan[baselines]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from volgan.metrics.image_quality import psnr


def best_gaussian(
    noisy: np.ndarray,
    clean: np.ndarray,
    *,
    data_range: float,
    mask: np.ndarray | None = None,
    sigmas: Sequence[float] = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5),
) -> tuple[np.ndarray, float]:
    """Gaussian filter with the width (in voxels) that maximises PSNR against ``clean``.

    This is an oracle: it looks at the clean reference to choose the width, so it is an upper
    bound on what Gaussian smoothing can do. Returns ``(filtered, sigma)``.
    """
    best, best_sigma, best_score = noisy, 0.0, psnr(noisy, clean, data_range=data_range, mask=mask)
    for s in sigmas:
        filtered = ndimage.gaussian_filter(noisy, s)
        score = psnr(filtered, clean, data_range=data_range, mask=mask)
        if score > best_score:
            best, best_sigma, best_score = filtered, float(s), score
    return best, best_sigma


def nlm_rician(noisy: np.ndarray, sigma: float, *, patch_radius: int = 1, block_radius: int = 5) -> np.ndarray:
    """dipy's non-local means with the Rician bias correction and a known noise ``sigma``."""
    from dipy.denoise.nlmeans import nlmeans

    return np.asarray(
        nlmeans(noisy.astype(np.float64), sigma, patch_radius=patch_radius, block_radius=block_radius, rician=True),
        dtype=np.float32,
    )


def bm4d_denoise(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """BM4D (Maggioni et al.) with a known white-noise ``sigma`` (the ``bm4d`` PyPI package)."""
    import bm4d

    return np.asarray(bm4d.bm4d(noisy.astype(np.float32), sigma), dtype=np.float32)
