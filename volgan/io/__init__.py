"""Reading and writing volumes: NIfTI (nibabel) and DICOM series (SimpleITK)."""

from __future__ import annotations

from volgan.io.dicom import read_dicom_series, sitk_to_affine
from volgan.io.errors import VolumeError
from volgan.io.nifti import is_nifti, nifti_stem, read_nifti, write_nifti
from volgan.io.reader import list_volumes, read_volume
from volgan.io.volume import Volume

__all__ = [
    "Volume",
    "VolumeError",
    "is_nifti",
    "list_volumes",
    "nifti_stem",
    "read_dicom_series",
    "read_nifti",
    "read_volume",
    "sitk_to_affine",
    "write_nifti",
]
