"""Full-reference image quality metrics for volumes: PSNR, 3D SSIM, NRMSE, MAE, relative sharpness.

Every metric takes an explicit ``data_range`` where the result depends on it, and an optional
boolean ``mask`` restricting the average (e.g. a brain mask).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _pair(pred, ref) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    if p.shape != r.shape:
        raise ValueError(f"prediction {p.shape} and reference {r.shape} differ in shape")
    return p, r


def _mask(mask, shape) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask, dtype=bool)
    if m.shape != tuple(shape):
        raise ValueError(f"mask {m.shape} does not match the images {tuple(shape)}")
    if not m.any():
        raise ValueError("mask is empty")
    return m


def _check_range(data_range: float) -> float:
    if data_range is None or not np.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"data_range must be a positive number, got {data_range}")
    return float(data_range)


def mse(pred, ref, *, mask=None) -> float:
    p, r = _pair(pred, ref)
    m = _mask(mask, p.shape)
    d = (p - r) ** 2
    return float(d[m].mean() if m is not None else d.mean())


def mae(pred, ref, *, mask=None) -> float:
    p, r = _pair(pred, ref)
    m = _mask(mask, p.shape)
    d = np.abs(p - r)
    return float(d[m].mean() if m is not None else d.mean())


def psnr(pred, ref, *, data_range: float, mask=None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / MSE)``."""
    data_range = _check_range(data_range)
    err = mse(pred, ref, mask=mask)
    return float("inf") if err == 0 else float(10 * np.log10(data_range**2 / err))


def nrmse(pred, ref, *, mask=None) -> float:
    """Root-mean-square error divided by the reference's root-mean-square (scikit-image's 'euclidean')."""
    p, r = _pair(pred, ref)
    m = _mask(mask, p.shape)
    if m is not None:
        p, r = p[m], r[m]
    denom = np.sqrt(np.mean(r**2))
    if denom == 0:
        raise ValueError("reference is all zero; NRMSE is undefined")
    return float(np.sqrt(np.mean((p - r) ** 2)) / denom)


def ssim(pred, ref, *, data_range: float, mask=None, sigma: float = 1.5) -> float:
    """Structural similarity in 3D with a Gaussian window (Wang et al. 2004, K1=0.01, K2=0.03).

    Local statistics use an isotropic Gaussian of ``sigma`` voxels (truncated at 3.5 sigma,
    an 11-voxel window for 1.5, as in the original SSIM). The SSIM map is averaged over ``mask``
    (or the whole volume).
    """
    data_range = _check_range(data_range)
    p, r = _pair(pred, ref)
    if p.ndim != 3:
        raise ValueError(f"ssim expects 3D volumes, got shape {p.shape}")
    m = _mask(mask, p.shape)

    def blur(x):
        return ndimage.gaussian_filter(x, sigma=sigma, truncate=3.5, mode="reflect")

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_p, mu_r = blur(p), blur(r)
    var_p = blur(p * p) - mu_p**2
    var_r = blur(r * r) - mu_r**2
    cov = blur(p * r) - mu_p * mu_r
    smap = ((2 * mu_p * mu_r + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_r**2 + c1) * (var_p + var_r + c2))
    return float(smap[m].mean() if m is not None else smap.mean())


def relative_sharpness(pred, ref, *, mask=None) -> float:
    """Mean gradient magnitude of ``pred`` relative to ``ref``'s (in ``mask``; 1: as sharp as the
    reference, below 1: smoother, above 1: edges or noise the reference does not have)."""
    p, r = _pair(pred, ref)
    m = _mask(mask, p.shape)

    def mean_gradient(a: np.ndarray) -> float:
        magnitude = np.sqrt(sum(g**2 for g in np.gradient(a)))
        return float(magnitude[m].mean() if m is not None else magnitude.mean())

    return mean_gradient(p) / max(mean_gradient(r), 1e-12)
