"""Run a predictor at the voxel sizes its network was trained on, and return on the input's grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from volgan.data.target_grid import ORDERS, resample_to_target
from volgan.io.volume import Volume


class TrainingSpacingPredictor:
    """Wrap a same-grid predictor so that it sees voxel sizes its network was trained on.

    An input whose voxel size along some axis lies outside ``spacing_range`` is resampled onto the
    grid with that axis's spacing brought to the nearest end of the range (other axes kept), the
    wrapped predictor runs there, and its result is resampled back onto the input's grid (as
    nnU-Net and Auto3DSeg do). Inputs inside the range pass through untouched. The result has the
    input's grid and affine, and the wrapped predictor's units.

    Args:
        predictor: object with ``predict(Volume) -> Volume`` on the input's grid.
        spacing_range: ``(low, high)`` voxel size in mm the network was trained on (``low == high``
            for a single voxel size).
        interpolation: ``"linear"`` or ``"cubic"`` (B-spline) for both resamplings.
        enabled: ``False`` passes every volume through as is.

    Examples::

        >>> wrapped = TrainingSpacingPredictor(predictor, (1.0, 1.0))  # a 2 mm PET runs at 1 mm
    """

    def __init__(self, predictor, spacing_range: Sequence[float] = (1.0, 1.0), interpolation: str = "cubic",
                 enabled: bool = True):
        low, high = (float(s) for s in spacing_range)
        if not 0 < low <= high:
            raise ValueError(f"spacing_range must be 0 < low <= high mm, got {tuple(spacing_range)}")
        if interpolation not in ORDERS:
            raise ValueError(f"interpolation must be one of {sorted(ORDERS)}, got {interpolation!r}")
        self.predictor, self.spacing_range = predictor, (low, high)
        self.interpolation, self.enabled = interpolation, bool(enabled)

    def model_spacing(self, spacing: Sequence[float]) -> tuple[float, float, float]:
        """The voxel size the network runs at for an input of ``spacing`` mm."""
        return tuple(float(s) for s in np.clip(spacing, *self.spacing_range))  # type: ignore[return-value]

    def predict_array(self, array: np.ndarray, **kwargs) -> np.ndarray:
        """A bare array has no voxel size: it runs on its own grid (``kwargs`` go to the wrapped
        ``predict_array``)."""
        return self.predictor.predict_array(array, **kwargs)

    def predict(self, volume: Volume) -> Volume:
        target = self.model_spacing(volume.spacing)
        if not self.enabled or np.allclose(target, volume.spacing, rtol=1e-3):
            return self.predictor.predict(volume)
        on_model = resample_to_target(volume, target, self.interpolation, max_coarsening=np.inf)
        result = self.predictor.predict(on_model)
        back = np.linalg.inv(on_model.affine) @ volume.affine  # input voxel index -> model-grid voxel index
        array = ndimage.affine_transform(
            np.asarray(result.array, dtype=np.float32), back[:3, :3], offset=back[:3, 3], output_shape=volume.shape,
            order=ORDERS[self.interpolation], mode="nearest", prefilter=True,
        )
        return result.with_array(array.astype(np.float32, copy=False), affine=volume.affine)
