"""Super-resolution onto a finer output grid: resample the input onto the target grid, then refine."""

from __future__ import annotations

from collections.abc import Sequence

from volgan.data.target_grid import resample_to_target
from volgan.io.volume import Volume


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
    """

    def __init__(self, predictor, spacing: float | Sequence[float] | None = 1.0, interpolation: str = "cubic"):
        self.predictor, self.spacing, self.interpolation = predictor, spacing, interpolation

    def prepare(self, volume: Volume) -> Volume:
        """The network input: ``volume`` on the target grid (or as is when ``spacing`` is None)."""
        if self.spacing is None:
            return volume
        return resample_to_target(volume, self.spacing, self.interpolation)

    def predict(self, volume: Volume) -> Volume:
        return self.predictor.predict(self.prepare(volume))
