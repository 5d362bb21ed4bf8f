"""Thick slices: average ``n`` consecutive thin slices into one, with the matching affine."""

from __future__ import annotations

import numpy as np

from volgan.io.volume import Volume


def average_slices(array: np.ndarray, n: int, axis: int = 2, offset: int = 0) -> np.ndarray:
    """Average each run of ``n`` consecutive slices along ``axis`` into one (a box slice profile).

    Slices ``offset + i*n .. offset + i*n + n - 1`` make thick slice ``i``; the incomplete run at
    the end (and the first ``offset`` slices) are dropped. Returns float32. Deterministic.
    """
    a = np.asarray(array, dtype=np.float64)
    if a.ndim != 3:
        raise ValueError(f"expected a 3D array, got shape {a.shape}")
    n, axis, offset = int(n), int(axis) % 3, int(offset)
    if n < 1 or offset < 0:
        raise ValueError(f"n must be >= 1 and offset >= 0, got n={n}, offset={offset}")
    count = (a.shape[axis] - offset) // n
    if count < 1:
        raise ValueError(f"axis {axis} has {a.shape[axis]} slices: fewer than offset + n = {offset + n}")
    a = np.moveaxis(a, axis, 0)[offset : offset + count * n]
    thick = a.reshape(count, n, *a.shape[1:]).mean(axis=1)
    return np.moveaxis(thick, 0, axis).astype(np.float32)


def thick_slice_affine(affine: np.ndarray, n: int, axis: int = 2, offset: int = 0) -> np.ndarray:
    """Voxel-to-world matrix of the thick-slice grid: thick voxel ``i`` along ``axis`` sits at thin
    index ``offset + i*n + (n-1)/2`` (the mean of the centres it averages); spacing ``n`` times larger."""
    to_thin = np.eye(4)
    to_thin[axis, axis] = n
    to_thin[axis, 3] = offset + (n - 1) / 2.0
    return np.asarray(affine, dtype=np.float64) @ to_thin


def thick_slices(volume: Volume, n: int, axis: int = 2, offset: int = 0) -> Volume:
    """:func:`average_slices` on a :class:`Volume`, with :func:`thick_slice_affine`.

    Examples::

        >>> vol = Volume(np.ones((4, 4, 8), np.float32), np.eye(4))
        >>> thick = thick_slices(vol, 4, axis=2)
        >>> thick.shape, thick.spacing, thick.affine[2, 3]
        ((4, 4, 2), (1.0, 1.0, 4.0), 1.5)
    """
    axis = int(axis) % 3
    return volume.with_array(
        average_slices(volume.array, n, axis, offset),
        affine=thick_slice_affine(volume.affine, n, axis, offset),
        dtype=np.dtype(np.float32),
    )
