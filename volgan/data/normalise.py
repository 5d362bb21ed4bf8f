"""Invertible intensity normalisation for network inputs (MR: percentile scaling)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform


@dataclass(frozen=True)
class LinearScale:
    """``normalised = (x - offset) / scale``; :meth:`invert` maps network outputs back to input units."""

    offset: float
    scale: float

    def apply(self, x):
        return (x - self.offset) / self.scale

    def invert(self, y):
        return y * self.scale + self.offset


class PercentileScaler:
    """Scale a volume so that ``offset`` maps to 0 and its ``upper`` percentile to 1.

    For magnitude MR the offset is 0 (so the generator's ReLU output stays valid) and the upper
    percentile (99.5 by default) is robust to a few bright vessels or noise spikes.

    Examples::

        >>> scaler = PercentileScaler(upper=99.5)
        >>> params = scaler.fit(np.arange(1000.0))
        >>> float(params.invert(params.apply(np.float32(7.0))))
        7.0
    """

    def __init__(self, upper: float = 99.5, offset: float = 0.0):
        if not 0 < upper <= 100:
            raise ValueError(f"upper percentile must be in (0, 100], got {upper}")
        self.upper, self.offset = float(upper), float(offset)

    def fit(self, array: np.ndarray | torch.Tensor) -> LinearScale:
        a = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        top = float(np.percentile(a, self.upper))
        if not np.isfinite(top) or top <= self.offset:
            top = float(a.max())
        if top <= self.offset:
            raise ValueError("cannot normalise a volume with no value above the offset")
        return LinearScale(self.offset, top - self.offset)


class ScaleByPercentiled(MapTransform):
    """Apply one :class:`PercentileScaler` fitted on ``ref_key`` to all ``keys``.

    Training pairs must be scaled with the parameters the predictor will fit at inference time,
    i.e. from the degraded input only.
    """

    def __init__(self, keys: KeysCollection, ref_key: str = "image", upper: float = 99.5, offset: float = 0.0):
        super().__init__(keys)
        self.ref_key = ref_key
        self.scaler = PercentileScaler(upper=upper, offset=offset)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        params = self.scaler.fit(d[self.ref_key])
        for key in self.key_iterator(d):
            d[key] = params.apply(d[key])
        return d
