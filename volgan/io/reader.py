"""One entry point to read any supported volume, and to list the volumes in a folder."""

from __future__ import annotations

import os
from pathlib import Path

from volgan.io.dicom import read_dicom_series
from volgan.io.errors import VolumeError
from volgan.io.nifti import is_nifti, read_nifti
from volgan.io.volume import Volume


def read_volume(path: str | os.PathLike, *, units: str | None = None, check: bool = True) -> Volume:
    """Read a NIfTI file or a DICOM series folder.

    Args:
        path: ``.nii``/``.nii.gz`` file or a folder holding one DICOM series.
        units: physical units of the values, if known (kept on the Volume and written back).
        check: reject empty (all-zero) volumes and NaN/inf values.

    Raises:
        VolumeError: naming the path and the problem.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return read_dicom_series(path, units=units, check=check)
    if is_nifti(path):
        return read_nifti(path, units=units, check=check)
    if not os.path.exists(path):
        raise VolumeError(path, "does not exist")
    raise VolumeError(path, "is neither a NIfTI file (.nii, .nii.gz) nor a DICOM series folder")


def list_volumes(folder: str | os.PathLike) -> list[Path]:
    """NIfTI files directly in ``folder`` (sorted), ignoring hidden and partial files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VolumeError(folder, "is not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and is_nifti(p) and not p.name.startswith("."))
