"""Foreground (body/brain) masks by Otsu's threshold, for overlap scores and patch sampling."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """The threshold maximising the between-class variance of ``values``' histogram."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        return float(values.min()) if values.size else 0.0
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(counts)
    w1 = w0[-1] - w0
    m0 = np.cumsum(counts * centres) / np.maximum(w0, 1)
    m1 = (np.sum(counts * centres) - np.cumsum(counts * centres)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1:][np.argmax(between[:-1])])


def foreground(array: np.ndarray, valid: np.ndarray | None = None, smooth: float = 2.0) -> np.ndarray:
    """Voxels above Otsu's threshold (computed on ``valid`` voxels only) after Gaussian smoothing by
    ``smooth`` voxels (so noise does not decide the edge), holes filled."""
    array = ndimage.gaussian_filter(np.asarray(array, dtype=np.float32), smooth) if smooth else np.asarray(array)
    values = array[valid] if valid is not None else array
    mask = array > otsu_threshold(values)
    if valid is not None:
        mask &= valid
    return ndimage.binary_fill_holes(mask)
