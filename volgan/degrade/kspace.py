"""K-space truncation: the low-resolution acquisition of mDCSRN's experiments, on the original grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from volgan.io.volume import Volume


def central_band(n: int, fraction: float) -> np.ndarray:
    """Boolean mask over ``numpy.fft.fftfreq(n)`` order keeping the ``round(n * fraction)`` lowest
    frequencies (the central part of the shifted spectrum: ``-m//2 .. m - m//2 - 1``)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    m = max(1, int(round(n * fraction)))
    k = np.fft.fftfreq(n) * n  # integer frequencies in fft order
    k = np.round(k).astype(int)
    return (k >= -(m // 2)) & (k <= m - m // 2 - 1)


def truncate_kspace(
    array: np.ndarray, fraction: float | Sequence[float] = 0.5, axes: Sequence[int] = (0, 1)
) -> np.ndarray:
    """Keep the central ``fraction`` of 3D k-space along ``axes``, zero the rest, return the magnitude.

    The image is Fourier transformed in 3D, the outer frequencies along each axis in ``axes`` are
    zeroed (a low-resolution acquisition with the same field of view), and the magnitude of the
    inverse transform is returned on the original grid, as float32. Chen et al. kept half of
    k-space along two axes (a 4x reduction): ``fraction=0.5, axes=(0, 1)``. Deterministic.

    A volume whose spectrum lies entirely inside the kept band is returned unchanged (up to
    floating point), if it is non-negative.

    Examples::

        >>> truncate_kspace(np.ones((8, 8, 8)), 0.5, axes=(0, 1)).shape
        (8, 8, 8)
    """
    a = np.asarray(array)
    if a.ndim != 3:
        raise ValueError(f"expected a 3D array, got shape {a.shape}")
    axes = [int(ax) % 3 for ax in axes]
    if len(set(axes)) != len(axes):
        raise ValueError(f"axes must be distinct, got {axes}")
    fractions = [float(fraction)] * len(axes) if np.isscalar(fraction) else [float(f) for f in fraction]
    if len(fractions) != len(axes):
        raise ValueError(f"{len(fractions)} fractions for {len(axes)} axes")
    spectrum = np.fft.fftn(a.astype(np.float64))
    for ax, frac in zip(axes, fractions):
        shape = [1, 1, 1]
        shape[ax] = a.shape[ax]
        spectrum = spectrum * central_band(a.shape[ax], frac).reshape(shape)
    return np.abs(np.fft.ifftn(spectrum)).astype(np.float32)


def truncate_kspace_volume(
    volume: Volume, fraction: float | Sequence[float] = 0.5, axes: Sequence[int] = (0, 1)
) -> Volume:
    """:func:`truncate_kspace` on a :class:`Volume`; the grid and affine are kept."""
    return volume.with_array(truncate_kspace(volume.array, fraction, axes), dtype=np.dtype(np.float32))
