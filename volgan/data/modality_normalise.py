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
from volgan.io.errors import VolumeError
from volgan.io.volume import Volume


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
    """PET: standardised uptake value divided by ``suv_max``, so typical uptake lies in [0, 1].

    ``SUV = value / units_per_suv``; for activity in Bq/ml, ``units_per_suv`` is the injected dose
    [Bq] decayed to the scan start, divided by the body weight [g]. Where it comes from:

    * a DICOM PET series read by volgan: its headers (``volume.meta["suv"]``, see
      :mod:`volgan.io.pet_suv`), in :meth:`fit_volume`; ``units_per_suv`` is used only for series
      whose Units carry no SUV factor (e.g. CNTS), and a series without weight or dose is refused;
    * anything else (NIfTI, arrays): ``units_per_suv`` (or ``weight_kg`` and ``injected_dose_bq``);
      without it the values are taken to be SUV already. A NIfTI file that volgan wrote in Bq/ml
      (its description says ``units=Bq/ml``) is refused without it.

    Network outputs come back in the input's units (Bq/ml in, Bq/ml out), or in SUV with
    ``output_suv=True``. :meth:`fit_volume` and :meth:`output_volume` are what
    :class:`~volgan.inference.Predictor` uses; :meth:`fit` serves arrays and training transforms.

    Args:
        weight_kg: body weight, with ``injected_dose_bq``: ``units_per_suv = dose / (1000 * weight)``.
        injected_dose_bq: the dose decayed to the scan start.
        suv_max: the SUV that maps to 1.
        units_per_suv: input value per SUV for inputs without SUV headers (e.g. Bq/ml per SUV).
        output_suv: write outputs in SUV instead of the input's units.

    Examples::

        >>> SuvScaler(suv_max=10).fit(None)  # values already in SUV
        LinearScale(offset=0.0, scale=10.0)
        >>> SuvScaler(units_per_suv=5000.0, suv_max=10).fit(None)  # Bq/ml, 5 kBq/ml per SUV
        LinearScale(offset=0.0, scale=50000.0)
    """

    def __init__(
        self,
        weight_kg: float | None = None,
        injected_dose_bq: float | None = None,
        suv_max: float = 10.0,
        *,
        units_per_suv: float | None = None,
        output_suv: bool = False,
    ):
        if (weight_kg is None) != (injected_dose_bq is None):
            raise ValueError("give both the body weight and the injected dose, or neither (values already in SUV)")
        if weight_kg is not None and not (weight_kg > 0 and injected_dose_bq > 0):
            raise ValueError(f"weight ({weight_kg} kg) and injected dose ({injected_dose_bq} Bq) must be positive")
        if weight_kg is not None and units_per_suv is not None:
            raise ValueError("give units_per_suv or weight and dose, not both")
        if units_per_suv is not None and not units_per_suv > 0:
            raise ValueError(f"units_per_suv must be positive, got {units_per_suv}")
        if not suv_max > 0:
            raise ValueError(f"suv_max must be positive, got {suv_max}")
        if weight_kg is not None:
            units_per_suv = injected_dose_bq / (weight_kg * 1000.0)
        self.units_per_suv = None if units_per_suv is None else float(units_per_suv)
        self.suv_max, self.output_suv = float(suv_max), bool(output_suv)
        self.scale = (1.0 if self.units_per_suv is None else self.units_per_suv) * self.suv_max

    def fit(self, array=None) -> LinearScale:
        return LinearScale(0.0, self.scale)

    def volume_units_per_suv(self, volume: Volume) -> float:
        """Value per SUV of ``volume``, from its DICOM headers or this scaler's settings.

        Raises:
            VolumeError: naming the volume, for a non-PET DICOM series, a PET series whose
            headers give no SUV factor, or a Bq/ml NIfTI without ``units_per_suv``.
        """
        meta = volume.meta
        if "suv" in meta:
            return float(meta["suv"].units_per_suv)
        modality = meta.get("modality")
        if modality is not None:  # a DICOM series
            if modality != "PT":
                kind = modality or "unknown-modality"
                raise VolumeError(volume.path, f"is a {kind} series; this PET network needs PET (Modality PT)")
            problem = meta.get("suv_error", "its headers give no SUV factor")
            if self.units_per_suv is not None and meta.get("pet_units") not in ("BQML", "GML"):
                return self.units_per_suv
            raise VolumeError(volume.path, problem)
        if self.units_per_suv is not None:
            return self.units_per_suv
        if volume.units == "Bq/ml" or "units=Bq/ml" in str(meta.get("descrip", "")):
            raise VolumeError(
                volume.path,
                "holds Bq/ml but no SUV scale was given: set units_per_suv (Bq/ml per SUV = decayed dose [Bq] / "
                "weight [g]), or read the original DICOM series",
            )
        return 1.0

    def fit_volume(self, volume: Volume) -> LinearScale:
        """Normalisation of ``volume``: ``value / (units_per_suv * suv_max)``, inverted to the input's units."""
        return LinearScale(0.0, self.volume_units_per_suv(volume) * self.suv_max)

    def output_volume(self, volume: Volume) -> Volume:
        """A prediction in the input's units, converted to SUV if ``output_suv``."""
        if not self.output_suv:
            return volume
        array = np.asarray(volume.array, dtype=np.float32) / np.float32(self.volume_units_per_suv(volume))
        return volume.with_array(array, units="SUV")


class ScaleBySuvd(MapTransform):
    """Training transform: divide ``keys`` by ``units_per_suv * suv_max``, as :class:`SuvScaler`
    does at inference time, so source and target share one scale.

    Args:
        keys: images to scale (e.g. ``["source", "target"]``).
        suv_max: the SUV that maps to 1 (same as the inference config).
        units_per_suv: input value per SUV for every sample; ``None``: values already in SUV.
        scale_key: per-sample value per SUV in the data dict (e.g. a manifest column for Bq/ml
            images of different patients); it takes precedence over ``units_per_suv``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        suv_max: float = 10.0,
        units_per_suv: float | None = None,
        scale_key: str | None = None,
    ):
        super().__init__(keys)
        self.scaler = SuvScaler(suv_max=suv_max, units_per_suv=units_per_suv)
        self.scale_key = scale_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        params = self.scaler.fit()
        if self.scale_key is not None:
            per_suv = float(np.asarray(d[self.scale_key]).reshape(-1)[0])
            if not per_suv > 0:
                raise ValueError(f"{self.scale_key} must be a positive value per SUV, got {per_suv}")
            params = LinearScale(0.0, per_suv * self.scaler.suv_max)
        for key in self.key_iterator(d):
            d[key] = params.apply(d[key])
        return d


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
