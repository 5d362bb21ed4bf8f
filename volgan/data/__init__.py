"""Data: normalisers and (later) pair manifests, alignment and paired patch sampling."""

from __future__ import annotations

from volgan.data.normalise import LinearScale, PercentileScaler, ScaleByPercentiled

__all__ = ["LinearScale", "PercentileScaler", "ScaleByPercentiled"]
