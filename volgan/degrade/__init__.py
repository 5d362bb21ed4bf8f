"""Forward models that turn clean volumes into degraded training inputs."""

from __future__ import annotations

from volgan.degrade.kspace import central_band, truncate_kspace, truncate_kspace_volume
from volgan.degrade.rician import RandRicianNoised, RicianNoised, add_rician_noise, rician_sigma
from volgan.degrade.thick_slices import average_slices, thick_slice_affine, thick_slices

__all__ = [
    "RandRicianNoised",
    "RicianNoised",
    "add_rician_noise",
    "average_slices",
    "central_band",
    "rician_sigma",
    "thick_slice_affine",
    "thick_slices",
    "truncate_kspace",
    "truncate_kspace_volume",
]
