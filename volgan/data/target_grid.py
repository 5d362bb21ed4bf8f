"""Target grids for super-resolution: the same physical extent, finer voxels, and resampling onto them.

A thick-slice series with spacing ``s`` along an axis covers ``N * s`` mm (each voxel is a slab
``s`` mm thick, centred on its voxel centre). The target grid with spacing ``t`` covers the same
extent with ``round(N * s / t)`` voxels whose first centre lies ``t / 2`` inside the first slab's
edge: for 4 mm slabs and a 1 mm target, four 1 mm voxels tile each slab exactly, centred at
-1.5, -0.5, +0.5 and +1.5 mm from the slab centre, i.e. on the grid the thin slices were acquired on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from volgan.io.errors import VolumeError
from volgan.io.volume import Volume

log = logging.getLogger(__name__)

ORDERS = {"nearest": 0, "linear": 1, "cubic": 3}
WARN_COARSENING = 1.1  # an axis losing more than this factor of its voxels is reported
MAX_COARSENING = 2.0  # ... and one losing more than this factor refused


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


def check_resolution(volume: Volume, spacing: float | Sequence[float], *, max_coarsening: float = MAX_COARSENING) -> None:
    """Refuse a target grid that would throw away resolution along an axis, warn of a milder loss.

    A target spacing more than ``max_coarsening`` times the volume's along any axis (e.g. 1 mm
    voxels for a 0.1 x 0.1 x 10 mm input: 50 in-plane voxels become 5) raises
    :class:`~volgan.io.VolumeError` naming the file, the axes and their voxel counts; more than
    :data:`WARN_COARSENING` times (e.g. 0.5 mm in-plane onto 1 mm) is logged as a warning.
    """
    current = np.asarray(volume.spacing, dtype=np.float64)
    target = _spacing_triplet(spacing)
    out_shape, _, _ = target_grid(volume.shape, volume.affine, target)
    lost = [
        f"axis {axis} from {n} to {m} voxels ({c:.3g} mm -> {t:.3g} mm)"
        for axis, (n, m, c, t) in enumerate(zip(volume.shape, out_shape, current, target))
        if t > WARN_COARSENING * c
    ]
    if not lost:
        return
    name = volume.path or "volume"
    if np.any(target > max_coarsening * current):
        raise VolumeError(
            name,
            f"the target grid of {tuple(float(t) for t in target)} mm voxels would reduce {', '.join(lost)}, more than "
            f"{max_coarsening:g}x coarser: this input is finer than the model's grid; give a target spacing no coarser "
            "than the input's (the bundle's target_spacing) or resample the input first",
        )
    log.warning("%s: the target grid reduces %s: resolution is lost along that axis", name, ", ".join(lost))


def resample_to_target(
    volume: Volume,
    spacing: float | Sequence[float],
    interpolation: str = "cubic",
    *,
    max_coarsening: float = MAX_COARSENING,
) -> Volume:
    """Resample ``volume`` onto :func:`target_grid` with spline interpolation.

    The grid is first checked by :func:`check_resolution` (``max_coarsening``): a target that
    would coarsen an axis more than that factor is refused, a milder loss logged.

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
    check_resolution(volume, spacing, max_coarsening=max_coarsening)
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
