"""DICOM series reading with SimpleITK, converted to the RAS+ affine convention of NIfTI."""

from __future__ import annotations

import os

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError

from volgan.io.errors import VolumeError
from volgan.io.pet_suv import UNIT_NAMES, read_suv_info
from volgan.io.validate import as_3d, check_spacing, check_values
from volgan.io.volume import Volume

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def sitk_to_affine(image: sitk.Image) -> np.ndarray:
    """4x4 RAS+ voxel-to-world matrix of a 3D SimpleITK image (index order x, y, z)."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    origin = np.asarray(image.GetOrigin(), dtype=float)
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ direction @ np.diag(spacing)
    affine[:3, 3] = _LPS_TO_RAS @ origin
    return affine


def sitk_to_array(image: sitk.Image) -> np.ndarray:
    """Voxel array in (x, y, z) index order, matching :func:`sitk_to_affine`."""
    return np.ascontiguousarray(np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0)))


def series_files(folder: str | os.PathLike) -> list[str]:
    """File names of the first DICOM series in ``folder`` (sorted by SimpleITK/GDCM)."""
    folder = os.fspath(folder)
    reader = sitk.ImageSeriesReader()
    ids = reader.GetGDCMSeriesIDs(folder)
    if not ids:
        raise VolumeError(folder, "holds no readable DICOM series")
    if len(ids) > 1:
        raise VolumeError(folder, f"holds {len(ids)} DICOM series; put one series per folder")
    return list(reader.GetGDCMSeriesFileNames(folder, ids[0]))


def pet_meta(folder: str, files: list[str]) -> tuple[str, dict]:
    """Units and metadata of a PET series: its DICOM ``pet_units`` and ``suv`` (a SuvInfo), or
    ``suv_error`` saying why its headers give no SUV factor (raised only by callers that need SUV)."""
    try:
        info = read_suv_info(folder, files)
    except VolumeError as err:
        meta: dict = {"suv_error": err.problem}
        try:  # the headers gave no SUV factor: read the Units tag alone
            units = str(pydicom.dcmread(files[0], stop_before_pixels=True, specific_tags=["Units"]).get("Units", "")).strip()
        except (InvalidDicomError, OSError):
            units = ""
    else:
        meta, units = {"suv": info}, info.units
    meta["pet_units"] = units.upper()
    return UNIT_NAMES.get(units.upper(), units or "a.u."), meta


def read_dicom_series(folder: str | os.PathLike, *, units: str | None = None, check: bool = True) -> Volume:
    """Read one DICOM series folder into a float32 :class:`Volume`.

    Each slice's own RescaleSlope/RescaleIntercept is applied (PET scanners store every slice
    with its own slope). CT values are in HU. PET (Modality PT) values stay as stored, in the
    series' Units (``"Bq/ml"`` for BQML, ``"SUV"`` for GML, ``"counts"`` for CNTS), and
    ``meta["suv"]`` holds the :class:`~volgan.io.pet_suv.SuvInfo` that converts them to SUV, or
    ``meta["suv_error"]`` says why the headers give none; so outputs can be written back in the
    input's units.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise VolumeError(folder, "is not a folder of DICOM files")
    files = series_files(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    # float output: otherwise ITK takes the pixel type of the first file, and when that slice has
    # slope 1 the other slices' rescaled values are truncated (and overflow) to its int16
    reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise VolumeError(folder, f"DICOM series could not be read ({str(err).strip().splitlines()[-1]})") from err
    if image.GetDimension() != 3 or image.GetSize()[2] < 2:
        raise VolumeError(folder, f"DICOM series has size {image.GetSize()}; volgan needs a 3D series of several slices")
    data = as_3d(sitk_to_array(image).astype(np.float32), folder)
    affine = sitk_to_affine(image)
    if check:
        check_spacing(image.GetSpacing(), folder)
        check_values(data, folder)
    modality = reader.GetMetaData(0, "0008|0060").strip() if reader.HasMetaDataKey(0, "0008|0060") else ""
    default_units, meta = {"CT": "HU"}.get(modality, "a.u."), {"modality": modality, "n_files": len(files)}
    if modality == "PT":
        default_units, pet = pet_meta(folder, files)
        meta.update(pet)
    return Volume(
        array=data,
        affine=affine,
        path=folder,
        units=units or default_units,
        dtype=np.dtype(np.float32),
        meta=meta,
    )
