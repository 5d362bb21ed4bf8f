"""Image quality metrics and classical baselines."""

from __future__ import annotations

from volgan.metrics.baselines import best_gaussian, bm4d_denoise, nlm_rician
from volgan.metrics.image_quality import mae, mse, nrmse, psnr, relative_sharpness, ssim
from volgan.metrics.lesion_contrast import contrast_recovery, lesion_contrasts, lesion_shells

__all__ = [
    "best_gaussian",
    "bm4d_denoise",
    "contrast_recovery",
    "lesion_contrasts",
    "lesion_shells",
    "mae",
    "mse",
    "nlm_rician",
    "nrmse",
    "psnr",
    "relative_sharpness",
    "ssim",
]
