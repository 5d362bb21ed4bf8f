"""Checks that a loaded array is a usable 3D volume."""

from __future__ import annotations

import numpy as np

from volgan.io.errors import VolumeError


def as_3d(array: np.ndarray, path: str) -> np.ndarray:
    """Return ``array`` as 3D, squeezing trailing singleton dimensions beyond the third, or raise
    VolumeError. A single slice is a 2D image however it is stored: ``(X, Y)`` and ``(X, Y, 1)``
    (or a singleton along any axis) are refused alike; two slices are a small volume."""
    arr = array
    while arr.ndim > 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        raise VolumeError(path, f"is a 2D image (shape {tuple(array.shape)}); volgan needs a 3D volume")
    if arr.ndim == 4:
        raise VolumeError(
            path,
            f"is a 4D series (shape {tuple(array.shape)}); split it into 3D volumes first "
            "(e.g. `fslsplit` or nibabel's four_to_three)",
        )
    if arr.ndim != 3:
        raise VolumeError(path, f"has {array.ndim} dimensions (shape {tuple(array.shape)}); volgan needs 3D")
    if min(arr.shape) < 1:
        raise VolumeError(path, f"has an empty dimension (shape {tuple(arr.shape)})")
    if min(arr.shape) == 1:
        raise VolumeError(
            path,
            f"is a 2D image stored as a single slice (shape {tuple(array.shape)}); volgan needs a 3D volume, "
            "with at least 2 voxels along every axis",
        )
    return arr


def check_values(array: np.ndarray, path: str) -> None:
    """Raise VolumeError if the volume holds NaN/inf or carries no signal at all."""
    finite = np.isfinite(array)
    if not finite.all():
        n_bad = int(array.size - np.count_nonzero(finite))
        raise VolumeError(
            path, f"contains {n_bad} NaN or infinite voxel(s) of {array.size}; fix or mask them before processing"
        )
    if not np.any(array):
        raise VolumeError(path, "is empty: every voxel is zero")


def check_spacing(spacing: tuple[float, ...], path: str, *, max_mm: float = 100.0) -> None:
    """Raise VolumeError for degenerate or absurd voxel sizes (0, negative, NaN, > ``max_mm``)."""
    sp = np.asarray(spacing, dtype=float)
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise VolumeError(path, f"has an invalid voxel spacing {tuple(np.round(sp, 4))} mm; the header's affine is broken")
    if np.any(sp > max_mm):
        raise VolumeError(
            path,
            f"has a voxel spacing of {tuple(np.round(sp, 3))} mm, above {max_mm} mm: the header's units or affine "
            "are almost certainly wrong",
        )
