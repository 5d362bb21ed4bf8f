"""Writing a PET volume as a DICOM PET Image Storage series (pydicom), for tests and demo data.

The series is written as scanners write it: one file per slice, int16 pixels with a per-slice
``RescaleSlope`` (so each slice uses the full int16 range), the patient weight, the injected dose
and the times that :func:`volgan.io.pet_suv.suv_info` needs to compute SUV.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from volgan.io.errors import VolumeError
from volgan.io.volume import Volume

PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
F18_HALF_LIFE_S = 6586.2
_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])
_INT16_MAX = 32767


def _date(t: dt.datetime) -> str:
    return t.strftime("%Y%m%d")


def _time(t: dt.datetime) -> str:
    return t.strftime("%H%M%S.%f")


def slice_geometry(affine: np.ndarray) -> tuple[list[float], list[float], float, np.ndarray]:
    """DICOM geometry of an RAS+ affine: ImageOrientationPatient, PixelSpacing (row, column),
    slice spacing, and the LPS affine whose columns give ImagePositionPatient per slice.

    Raises ValueError for a left-handed affine: DICOM readers stack slices along
    row x column, so its slices would come back in reverse order.
    """
    lps = np.eye(4)
    lps[:3, :] = _LPS_FROM_RAS @ np.asarray(affine, dtype=float)[:3, :]
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    row, col, normal = (lps[:3, i] / spacing[i] for i in range(3))
    if float(np.dot(np.cross(row, col), normal)) <= 0:
        raise ValueError(
            "the affine is left-handed (slices run against row x column); flip the last axis of the "
            "volume (and its affine) before writing it as DICOM"
        )
    orientation = [float(v) for v in np.concatenate([row, col])]
    return orientation, [float(spacing[1]), float(spacing[0])], float(spacing[2]), lps


def _radiopharmaceutical(injected_dose_bq: float | None, injection_time: dt.datetime, half_life_s: float) -> Dataset:
    item = Dataset()
    item.Radiopharmaceutical = "Fluorodeoxyglucose"
    if injected_dose_bq is not None:
        item.RadionuclideTotalDose = f"{injected_dose_bq:.6g}"
    item.RadionuclideHalfLife = f"{half_life_s:.6g}"
    item.RadionuclidePositronFraction = "0.9673"
    item.RadiopharmaceuticalStartTime = _time(injection_time)
    item.RadiopharmaceuticalStartDateTime = _date(injection_time) + _time(injection_time)
    return item


def write_pet_dicom_series(
    volume: Volume,
    folder: str | os.PathLike,
    *,
    weight_kg: float | None,
    injected_dose_bq: float | None,
    injection_time: dt.datetime,
    series_time: dt.datetime,
    half_life_s: float = F18_HALF_LIFE_S,
    decay_correction: str = "START",
    units: str = "BQML",
    patient_id: str = "volgan-demo",
) -> list[Path]:
    """Write ``volume`` (values in ``units``, e.g. Bq/ml for ``BQML``) as a PET DICOM series.

    One file per slice along the volume's last axis, named ``slice0001.dcm``...; int16 pixels
    with a per-slice ``RescaleSlope`` = slice maximum / 32767 (intercept 0), so values come back
    within half a slope of the input. ``read_volume(folder)`` gives back the volume's grid and
    affine (RAS+ converted to DICOM's LPS here).

    Args:
        volume: the activity volume; values must be >= 0 (PET), affine right-handed.
        folder: created if missing; must not already hold DICOM files of another series.
        weight_kg: PatientWeight; ``None`` leaves the tag out (to test readers).
        injected_dose_bq: RadionuclideTotalDose; ``None`` leaves the tag out.
        injection_time: RadiopharmaceuticalStartDateTime (and StartTime).
        series_time: SeriesDate/SeriesTime and AcquisitionDate/AcquisitionTime.
        half_life_s: RadionuclideHalfLife (default F-18).
        decay_correction: DecayCorrection, ``START``, ``ADMIN`` or ``NONE``.
        units: Units, ``BQML``, ``GML`` (SUV body weight) or ``CNTS``.
        patient_id: PatientID / PatientName.

    Returns:
        The written files, in slice order.

    Examples::

        >>> write_pet_dicom_series(vol, "pet/s1", weight_kg=70, injected_dose_bq=370e6,
        ...     injection_time=datetime(2024, 5, 1, 9, 0), series_time=datetime(2024, 5, 1, 10, 0))
    """
    array = np.asarray(volume.array, dtype=np.float64)
    if array.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {array.shape}")
    if array.min() < 0:
        raise ValueError(f"PET values must be >= 0 for int16 storage with intercept 0, got a minimum of {array.min()}")
    orientation, pixel_spacing, thickness, lps = slice_geometry(volume.affine)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    n_slices = array.shape[2]
    paths = []
    for k in range(n_slices):
        pixels = array[:, :, k].T  # (rows, columns) = (y, x)
        top = float(pixels.max())
        slope = top / _INT16_MAX if top > 0 else 1.0
        stored = np.round(pixels / slope).astype(np.int16)
        sop_uid = generate_uid()

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = PET_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.SOPClassUID, ds.SOPInstanceUID = PET_IMAGE_STORAGE, sop_uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.Modality = "PT"
        ds.PatientName = ds.PatientID = patient_id
        if weight_kg is not None:
            ds.PatientWeight = f"{weight_kg:.6g}"
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = _date(series_time)
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = _time(series_time)
        ds.SeriesNumber, ds.InstanceNumber, ds.ImageIndex = 1, k + 1, k + 1
        ds.NumberOfSlices = n_slices
        ds.Units = units
        ds.DecayCorrection = decay_correction
        ds.CorrectedImage = ["ATTN", "DECY"] if decay_correction != "NONE" else ["ATTN"]
        ds.SeriesType = ["STATIC", "IMAGE"]
        ds.RadiopharmaceuticalInformationSequence = [_radiopharmaceutical(injected_dose_bq, injection_time, half_life_s)]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in (lps @ np.array([0.0, 0.0, k, 1.0]))[:3]]
        ds.PixelSpacing = [f"{v:.8g}" for v in pixel_spacing]
        ds.SliceThickness = f"{thickness:.8g}"
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = f"{slope:.10g}", "0", units
        ds.PixelData = np.ascontiguousarray(stored).tobytes()
        path = folder / f"slice{k + 1:04d}.dcm"
        try:
            pydicom.dcmwrite(path, ds, write_like_original=False)
        except OSError as err:
            raise VolumeError(path, f"could not be written ({err})") from err
        paths.append(path)
    return paths
