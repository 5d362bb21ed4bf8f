"""Invertible intensity normalisers for CT (HU window), PET (SUV scale) and MR (percentile), and a
MONAI transform that applies one and keeps its parameters for inverting network outputs."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from volgan.data.normalise import LinearScale, PercentileScaler


@dataclass(frozen=True)
class WindowScale(LinearScale):
    """``LinearScale`` that first clips to ``[offset, offset + scale]``: values outside the window
    come back from :meth:`invert` as the window's edges."""

    def apply(self, x):
        lo, hi = self.offset, self.offset + self.scale
        x = x.clamp(lo, hi) if isinstance(x, torch.Tensor) else np.clip(x, lo, hi)
        return (x - self.offset) / self.scale


class HuWindow:
    """CT: clip to a Hounsfield window and map it to [0, 1] (default -1000..2000 HU: air to dense bone)."""

    def __init__(self, lower: float = -1000.0, upper: float = 2000.0):
        if not upper > lower:
            raise ValueError(f"the HU window needs upper > lower, got {lower}..{upper}")
        self.lower, self.upper = float(lower), float(upper)

    def fit(self, array=None) -> WindowScale:
        return WindowScale(self.lower, self.upper - self.lower)


class SuvScaler:
    """PET: standardised uptake value, ``SUV = activity [Bq/ml] * body weight [g] / injected dose [Bq]``,
    divided by ``suv_max`` so typical uptake lies in [0, 1]. Without weight and dose the values are
    taken to be SUV already."""

    def __init__(self, weight_kg: float | None = None, injected_dose_bq: float | None = None, suv_max: float = 10.0):
        if (weight_kg is None) != (injected_dose_bq is None):
            raise ValueError("give both the body weight and the injected dose, or neither (values already in SUV)")
        if weight_kg is not None and not (weight_kg > 0 and injected_dose_bq > 0):
            raise ValueError(f"weight ({weight_kg} kg) and injected dose ({injected_dose_bq} Bq) must be positive")
        if not suv_max > 0:
            raise ValueError(f"suv_max must be positive, got {suv_max}")
        per_suv = 1.0 if weight_kg is None else injected_dose_bq / (weight_kg * 1000.0)
        self.scale = per_suv * float(suv_max)

    def fit(self, array=None) -> LinearScale:
        return LinearScale(0.0, self.scale)


def normaliser_for(modality: str, **options):
    """The normaliser for a DICOM-style modality: ``CT``, ``PT``/``PET`` or ``MR``."""
    kinds = {"CT": HuWindow, "PT": SuvScaler, "PET": SuvScaler, "MR": PercentileScaler}
    if modality.upper() not in kinds:
        raise ValueError(f"no normaliser for modality {modality!r}; choose one of {sorted(kinds)}")
    return kinds[modality.upper()](**options)


class Normalised(MapTransform):
    """Normalise each of ``keys`` with a normaliser fitted on it; ``<key>_scale`` keeps
    ``(offset, scale)`` so that ``output * scale + offset`` returns to the input's units."""

    def __init__(self, keys: KeysCollection, normaliser):
        super().__init__(keys)
        self.normaliser = normaliser

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            params = self.normaliser.fit(d[key])
            d[key] = params.apply(d[key])
            d[f"{key}_scale"] = np.array([params.offset, params.scale], dtype=np.float64)
        return d
