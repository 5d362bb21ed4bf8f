"""Reading and writing volumes: NIfTI (nibabel), DICOM series (SimpleITK), PET SUV from DICOM headers (pydicom)."""

from __future__ import annotations

from volgan.io.dicom import read_dicom_series, sitk_to_affine
from volgan.io.errors import VolumeError
from volgan.io.nifti import is_nifti, nifti_stem, read_nifti, write_nifti
from volgan.io.pet_dicom import write_pet_dicom_series
from volgan.io.pet_suv import SuvInfo, read_suv_info, suv_info
from volgan.io.reader import list_volumes, read_volume
from volgan.io.volume import Volume

__all__ = [
    "SuvInfo",
    "Volume",
    "VolumeError",
    "is_nifti",
    "list_volumes",
    "nifti_stem",
    "read_dicom_series",
    "read_nifti",
    "read_suv_info",
    "read_volume",
    "sitk_to_affine",
    "suv_info",
    "write_nifti",
    "write_pet_dicom_series",
]
