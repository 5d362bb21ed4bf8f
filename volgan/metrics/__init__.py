"""Image quality metrics and classical baselines."""

from __future__ import annotations

from volgan.metrics.baselines import best_gaussian, bm4d_denoise, nlm_rician
from volgan.metrics.image_quality import mae, mse, nrmse, psnr, ssim

__all__ = ["best_gaussian", "bm4d_denoise", "nlm_rician", "mae", "mse", "nrmse", "psnr", "ssim"]
