"""Values a model cannot return: input voxels below the lowest value its network outputs (e.g. a
final ReLU clips negatives to the normalisation offset), and inputs of another modality."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from volgan.data.normalise import LinearScale
from volgan.inference.provenance import inner_predictor
from volgan.io.volume import Volume

logger = logging.getLogger(__name__)

PROBE_SHAPE = (32, 32, 32)


def output_floor(predictor: Any) -> float | None:
    """The lowest value, in normalised units, that ``predictor``'s network returns, or None if it can go below zero.

    The network is run once on a window of negative values (normalised units, identity scaling):
    if no output voxel is below 0, the network cannot represent negative values (a final ReLU,
    as in RED-WGAN and the PET U-Net) and 0 is its floor. None also for a predictor without
    ``predict_array`` or one the probe cannot run on.
    """
    predict_array = getattr(inner_predictor(predictor), "predict_array", None)
    if predict_array is None:
        return None
    probe = -np.random.default_rng(0).uniform(0.05, 1.0, PROBE_SHAPE).astype(np.float32)
    try:
        result = predict_array(probe, params=LinearScale(0.0, 1.0))
    except Exception as err:  # a network that needs other shapes: no floor known, nothing claimed
        logger.debug("output floor probe failed: %s: %s", type(err).__name__, err)
        return None
    return 0.0 if float(np.min(result)) >= 0.0 else None


def input_scale(predictor: Any, volume: Volume) -> LinearScale | None:
    """The normalisation that ``predictor`` applies to ``volume`` (None if it cannot be fitted;
    prediction then reports the problem)."""
    normaliser = getattr(inner_predictor(predictor), "normaliser", None)
    if normaliser is None:
        return LinearScale(0.0, 1.0)
    try:
        fit_volume = getattr(normaliser, "fit_volume", None)
        return fit_volume(volume) if fit_volume is not None else normaliser.fit(volume.array)
    except (ValueError, ArithmeticError):
        return None


def below_floor(volume: Volume, scale: LinearScale, floor: float) -> str:
    """A warning if voxels of ``volume`` lie below what the model outputs ("" if none do)."""
    limit = scale.offset + floor * scale.scale
    below = int(np.count_nonzero(volume.array < limit))
    if not below:
        return ""
    share = below / volume.array.size
    return (f"{volume.path}: {100 * share:.1f} % of voxels are below {limit:g} {volume.units}, the lowest value "
            f"this model outputs (input minimum {float(volume.array.min()):g}); they come back clipped to {limit:g}. "
            f"Is this the right bundle for this image?")


def modality_mismatch(volume: Volume, expected: str | None) -> str:
    """A warning if the volume's DICOM modality is known and is not ``expected`` ("" otherwise)."""
    found = str(volume.meta.get("modality") or "").upper()
    if not expected or not found or found == expected.upper():
        return ""
    return f"{volume.path}: DICOM modality {found}, but the model is for {expected.upper()}"


class ValueRangeCheck:
    """Warnings for a volume that ``predictor`` cannot represent: voxels below its output floor
    (probed once, on the first volume with such voxels) and a DICOM modality other than ``modality``."""

    def __init__(self, predictor: Any, modality: str | None = None):
        self.predictor, self.modality = predictor, modality
        self._floor: float | None = None
        self._probed = False

    def floor(self) -> float | None:
        if not self._probed:
            self._floor, self._probed = output_floor(self.predictor), True
        return self._floor

    def __call__(self, volume: Volume) -> str:
        warnings = []
        scale = input_scale(self.predictor, volume)
        # the floor is 0 in normalised units when known: only volumes with voxels below the offset need it
        if scale is not None and float(volume.array.min()) < scale.offset:
            floor = self.floor()
            if floor is not None:
                warnings.append(below_floor(volume, scale, floor))
        warnings.append(modality_mismatch(volume, self.modality))
        return " ".join(w for w in warnings if w)
