"""Forward models that turn clean volumes into degraded training inputs."""

from __future__ import annotations

from volgan.degrade.kspace import central_band, truncate_kspace, truncate_kspace_volume
from volgan.degrade.pet import PetData, PetScanner, SimulateLowDosePetd, gaussian_blur_mm, simulate_doses
from volgan.degrade.pet_image_noise import image_noise_doses
from volgan.degrade.pet_osem import osem, subset_sensitivities
from volgan.degrade.pet_projector import ParallelBeamProjector, parallel_projector
from volgan.degrade.rician import RandRicianNoised, RicianNoised, add_rician_noise, rician_sigma
from volgan.degrade.thick_slices import average_slices, thick_slice_affine, thick_slices

__all__ = [
    "ParallelBeamProjector",
    "PetData",
    "PetScanner",
    "SimulateLowDosePetd",
    "RandRicianNoised",
    "RicianNoised",
    "add_rician_noise",
    "average_slices",
    "central_band",
    "gaussian_blur_mm",
    "image_noise_doses",
    "osem",
    "parallel_projector",
    "rician_sigma",
    "simulate_doses",
    "subset_sensitivities",
    "thick_slice_affine",
    "thick_slices",
    "truncate_kspace",
    "truncate_kspace_volume",
]
