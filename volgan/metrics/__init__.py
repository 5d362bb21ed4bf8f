"""Image quality metrics and classical baselines."""

from __future__ import annotations

from volgan.metrics.image_quality import mae, mse, nrmse, psnr, ssim

__all__ = ["mae", "mse", "nrmse", "psnr", "ssim"]
