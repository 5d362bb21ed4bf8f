"""DICOM series reading with SimpleITK, converted to the RAS+ affine convention of NIfTI."""

from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from volgan.io.errors import VolumeError
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


def read_dicom_series(folder: str | os.PathLike, *, units: str | None = None, check: bool = True) -> Volume:
    """Read one DICOM series folder into a float32 :class:`Volume` (rescale slope/intercept applied)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise VolumeError(folder, "is not a folder of DICOM files")
    files = series_files(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
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
    default_units = {"CT": "HU"}.get(modality, "a.u.")
    return Volume(
        array=data,
        affine=affine,
        path=folder,
        units=units or default_units,
        dtype=np.dtype(np.float32),
        meta={"modality": modality, "n_files": len(files)},
    )
