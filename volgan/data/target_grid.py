"""Target grids for super-resolution: the same physical extent, finer voxels, and resampling onto them.

A thick-slice series with spacing ``s`` along an axis covers ``N * s`` mm (each voxel is a slab
``s`` mm thick, centred on its voxel centre). The target grid with spacing ``t`` covers the same
extent with ``round(N * s / t)`` voxels whose first centre lies ``t / 2`` inside the first slab's
edge: for 4 mm slabs and a 1 mm target, four 1 mm voxels tile each slab exactly, centred at
-1.5, -0.5, +0.5 and +1.5 mm from the slab centre, i.e. on the grid the thin slices were acquired on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from volgan.io.volume import Volume

ORDERS = {"nearest": 0, "linear": 1, "cubic": 3}


def _spacing_triplet(spacing: float | Sequence[float]) -> np.ndarray:
    t = np.full(3, float(spacing)) if np.isscalar(spacing) else np.asarray([float(s) for s in spacing])
    if t.shape != (3,) or np.any(t <= 0) or not np.all(np.isfinite(t)):
        raise ValueError(f"target spacing must be one or three positive numbers, got {spacing}")
    return t


def target_grid(
    shape: Sequence[int], affine: np.ndarray, spacing: float | Sequence[float]
) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray]:
    """The grid of ``spacing`` mm voxels covering the same extent as ``(shape, affine)``.

    Returns ``(shape, affine, index_map)``: ``index_map`` is the 4x4 matrix taking target voxel
    indices to (fractional) input voxel indices, ``affine = input_affine @ index_map``. Axes are
    kept in the input's order and orientation (no reorientation).
    """
    affine = np.asarray(affine, dtype=np.float64)
    current = np.linalg.norm(affine[:3, :3], axis=0)
    target = _spacing_triplet(spacing)
    ratio = target / current  # input voxels per target voxel
    out_shape = tuple(max(1, int(round(n / r))) for n, r in zip(shape, ratio))
    index_map = np.eye(4)
    index_map[:3, :3] = np.diag(ratio)
    index_map[:3, 3] = -0.5 + ratio / 2.0  # first target centre half a target voxel inside the edge
    return out_shape, affine @ index_map, index_map  # type: ignore[return-value]


def resample_to_target(volume: Volume, spacing: float | Sequence[float], interpolation: str = "cubic") -> Volume:
    """Resample ``volume`` onto :func:`target_grid` with spline interpolation.

    ``interpolation``: ``"nearest"`` (order 0), ``"linear"`` (order 1) or ``"cubic"`` (cubic
    B-spline, order 3, with scipy's interpolating spline prefilter). Values outside the outermost
    voxel centres (the outer half of the first and last slab) repeat the edge voxel
    (``mode="nearest"``). Returns a float32 :class:`Volume` on the target grid.

    Examples::

        >>> vol = Volume(np.ones((4, 4, 2), np.float32), np.diag([1.0, 1.0, 4.0, 1.0]))
        >>> out = resample_to_target(vol, 1.0)
        >>> out.shape, out.spacing
        ((4, 4, 8), (1.0, 1.0, 1.0))
    """
    if interpolation not in ORDERS:
        raise ValueError(f"interpolation must be one of {sorted(ORDERS)}, got {interpolation!r}")
    shape, affine, index_map = target_grid(volume.shape, volume.affine, spacing)
    out = ndimage.affine_transform(
        np.asarray(volume.array, dtype=np.float32),
        index_map[:3, :3],
        offset=index_map[:3, 3],
        output_shape=shape,
        order=ORDERS[interpolation],
        mode="nearest",
        prefilter=True,
    )
    return volume.with_array(out.astype(np.float32, copy=False), affine=affine, dtype=np.dtype(np.float32))
