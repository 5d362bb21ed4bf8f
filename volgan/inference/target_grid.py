"""Super-resolution onto a finer output grid: resample the input onto the target grid, then refine."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from volgan.data.target_grid import resample_to_target
from volgan.io.volume import Volume

ANISOTROPY = 1.5  # an input is thick-sliced when its coarsest axis is this much coarser than its finest


def swap_axes(volume: Volume, a: int, b: int) -> Volume:
    """``volume`` with voxel axes ``a`` and ``b`` exchanged (same world positions)."""
    order = list(range(3))
    order[a], order[b] = order[b], order[a]
    affine = volume.affine.copy()
    affine[:, :3] = volume.affine[:, order]
    return volume.with_array(np.ascontiguousarray(np.transpose(volume.array, order)), affine=affine)


class TargetGridPredictor:
    """Wrap a same-grid predictor (e.g. :class:`~volgan.inference.Predictor`) for super-resolution.

    ``predict(volume)`` first resamples ``volume`` onto the grid of ``spacing`` mm voxels that
    keeps its physical extent (:func:`volgan.data.target_grid.target_grid`) with ``interpolation``
    (cubic B-spline by default), then runs ``predictor.predict`` on that volume, so the output
    affine is the target grid's. With ``spacing=None`` it passes volumes through on their own grid
    (k-space mode). It has the ``predict(Volume) -> Volume`` interface that
    :class:`~volgan.inference.BatchRunner` needs.

    Args:
        predictor: object with ``predict(Volume) -> Volume`` on the input's grid.
        spacing: target voxel size in mm (one number or three), or ``None`` for no resampling.
        interpolation: ``"nearest"``, ``"linear"`` or ``"cubic"``.
        slice_axis: the voxel axis along which the network was trained to restore thick slices:
            an input whose coarsest axis (at least :data:`ANISOTROPY` times its finest) is another
            one has the two axes exchanged for the network and exchanged back after; ``None``:
            never.
    """

    def __init__(self, predictor, spacing: float | Sequence[float] | None = 1.0, interpolation: str = "cubic",
                 slice_axis: int | None = None):
        if slice_axis is not None and slice_axis not in (0, 1, 2):
            raise ValueError(f"slice_axis must be 0, 1, 2 or None, got {slice_axis}")
        self.predictor, self.spacing, self.interpolation = predictor, spacing, interpolation
        self.slice_axis = slice_axis

    def thick_axis(self, volume: Volume) -> int | None:
        """The input's slice axis (its coarsest), or None for a (nearly) isotropic input."""
        spacing = np.asarray(volume.spacing, dtype=float)
        return int(np.argmax(spacing)) if spacing.max() >= ANISOTROPY * spacing.min() else None

    def prepare(self, volume: Volume) -> Volume:
        """The network input: ``volume`` on the target grid (or as is when ``spacing`` is None)."""
        if self.spacing is None:
            return volume
        return resample_to_target(volume, self.spacing, self.interpolation)

    def predict(self, volume: Volume) -> Volume:
        prepared = self.prepare(volume)
        thick = self.thick_axis(volume) if self.slice_axis is not None and self.spacing is not None else None
        turn = thick is not None and thick != self.slice_axis
        if turn:
            prepared = swap_axes(prepared, thick, self.slice_axis)
        out = self.predictor.predict(prepared)
        return swap_axes(out, thick, self.slice_axis) if turn else out
