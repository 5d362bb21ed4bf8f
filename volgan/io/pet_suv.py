"""Body-weight SUV factor of a DICOM PET series, from its headers (pydicom, no pixel data).

``SUV = value * factor``. For a series in Bq/ml (``Units`` BQML),
``factor = body weight [g] / decayed dose [Bq]``, where the injected dose is decayed from the
injection time to the time the image is decay corrected to:

* ``DecayCorrection`` START: the scan start, ``SeriesDate``/``SeriesTime``, or the earliest
  ``AcquisitionDate``/``AcquisitionTime`` when the series time is missing or later than that
  (some scanners rewrite the series time when a series is reprocessed; the QIBA vendor-neutral
  SUV rule does the same);
* ADMIN: the injection time itself, so the dose is not decayed;
* NONE: the image is not decay corrected, so each slice holds activity at its own acquisition
  time. One factor for the volume cannot undo that: the dose is decayed to the scan start as for
  START, and ``SuvInfo.note`` says that SUV is underestimated in slices acquired later
  (by ``2 ** (delay / half-life)``, about 13 % 20 minutes into an F-18 scan).

A series in ``GML`` (g/ml, already body-weight SUV) has factor 1. Other units (``CNTS``...)
have no SUV factor: :func:`suv_info` raises :class:`VolumeError`, and callers that know the
scale give it themselves (see :class:`volgan.data.SuvScaler`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from volgan.io.errors import VolumeError

# the DICOM Units that carry an SUV factor, and the unit name volgan gives the values
UNIT_NAMES = {"BQML": "Bq/ml", "GML": "SUV", "CNTS": "counts"}


@dataclass(frozen=True)
class SuvInfo:
    """How the values of a PET series convert to body-weight SUV (``SUV = value * factor``).

    Attributes:
        factor: SUV per unit of the stored value (g/Bq for Bq/ml; 1 for values already in SUV).
        units: the DICOM ``Units`` of the values (``BQML`` or ``GML``).
        weight_kg: PatientWeight (``None`` for GML series without it).
        injected_dose_bq: RadionuclideTotalDose at injection (``None`` for GML series without it).
        half_life_s: RadionuclideHalfLife.
        decay_correction: DecayCorrection (``START``, ``ADMIN`` or ``NONE``).
        injection_time: radiopharmaceutical start date and time.
        reference_time: the time the dose is decayed to (``None`` for ADMIN and GML).
        decayed_dose_bq: the dose at ``reference_time`` (the injected dose for ADMIN).
        note: how the times were found, and caveats a user should know about.
    """

    factor: float
    units: str
    weight_kg: float | None = None
    injected_dose_bq: float | None = None
    half_life_s: float | None = None
    decay_correction: str = ""
    injection_time: dt.datetime | None = None
    reference_time: dt.datetime | None = None
    decayed_dose_bq: float | None = None
    note: str = ""

    @property
    def units_per_suv(self) -> float:
        """Stored value per SUV (e.g. Bq/ml per SUV): ``1 / factor``."""
        return 1.0 / self.factor

    @property
    def uptake_s(self) -> float | None:
        """Seconds from injection to the reference time."""
        if self.injection_time is None or self.reference_time is None:
            return None
        return (self.reference_time - self.injection_time).total_seconds()


def _datetime(date: str | None, time: str | None) -> dt.datetime | None:
    """DICOM DA + TM (``HHMMSS.FFFFFF``, ``HHMM``, ``HH:MM:SS``...) as a naive datetime, or None."""
    if not date or not time:
        return None
    date, time = str(date).strip(), str(time).strip().replace(":", "")
    whole, _, fraction = time.partition(".")
    whole = whole.ljust(6, "0")
    try:
        parsed = dt.datetime.strptime(date + whole[:6], "%Y%m%d%H%M%S")
    except ValueError:
        return None
    micro = int(fraction[:6].ljust(6, "0")) if fraction.isdigit() else 0
    return parsed.replace(microsecond=micro)


def _parse_dt(value: str | None) -> dt.datetime | None:
    """DICOM DT ``YYYYMMDDHHMMSS.FFFFFF&ZZXX`` (timezone offset dropped) as a naive datetime."""
    if not value:
        return None
    text = str(value).strip()
    for sign in "+-":
        text = text.split(sign)[0]
    return _datetime(text[:8], text[8:]) if len(text) >= 10 else None


def _number(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _scan_start(datasets: Sequence[Dataset]) -> tuple[dt.datetime | None, str]:
    """Series date/time, or the earliest acquisition date/time when that is earlier or missing."""
    first = datasets[0]
    series = _datetime(first.get("SeriesDate"), first.get("SeriesTime"))
    acquisitions = [
        t for ds in datasets
        if (t := _datetime(ds.get("AcquisitionDate") or ds.get("SeriesDate"), ds.get("AcquisitionTime"))) is not None
    ]
    earliest = min(acquisitions) if acquisitions else None
    if series is not None and (earliest is None or series <= earliest):
        return series, "scan start from SeriesDate/SeriesTime"
    if earliest is not None:
        why = "is missing" if series is None else f"({series:%H:%M:%S}) is after the first acquisition"
        return earliest, f"scan start from the earliest AcquisitionTime (SeriesTime {why})"
    return None, ""


def suv_info(datasets: Sequence[Dataset], folder: str | os.PathLike) -> SuvInfo:
    """Body-weight SUV factor from the headers of one PET series (its slices' datasets).

    Args:
        datasets: the series' files read with ``stop_before_pixels=True`` (any order).
        folder: named in errors.

    Raises:
        VolumeError: naming ``folder`` and the missing or unusable tag (weight, dose, half-life,
        times, or units without an SUV factor).
    """
    if not datasets:
        raise VolumeError(folder, "holds no DICOM files")
    first = datasets[0]
    modality = str(first.get("Modality", "")).strip()
    if modality != "PT":
        raise VolumeError(folder, f"is a {modality or 'unknown-modality'} series, not PET (Modality PT): it has no SUV")
    units = str(first.get("Units", "")).strip().upper()
    weight = _number(first, "PatientWeight")
    items = first.get("RadiopharmaceuticalInformationSequence") or []
    item = items[0] if len(items) else Dataset()
    dose, half_life = _number(item, "RadionuclideTotalDose"), _number(item, "RadionuclideHalfLife")
    decay = str(first.get("DecayCorrection", "")).strip().upper()
    if units == "GML":
        return SuvInfo(1.0, units, weight, dose, half_life, decay, note="values are body-weight SUV (Units GML)")
    if units != "BQML":
        raise VolumeError(
            folder,
            f"PET values are in Units {units or '(missing, 0054,1001)'}, which has no SUV factor; volgan converts "
            "BQML (Bq/ml) and GML (SUV) series. Give the scale yourself (value per SUV, e.g. SuvScaler's "
            "units_per_suv) to use this series",
        )
    if not weight or weight <= 0:
        state = "missing" if weight is None else weight
        raise VolumeError(folder, f"PatientWeight (0010,1030) is {state}; SUV needs the body weight")
    if not dose or dose <= 0:
        raise VolumeError(
            folder,
            f"RadionuclideTotalDose (0018,1074) in RadiopharmaceuticalInformationSequence (0054,0016) is "
            f"{'missing' if dose is None else dose}; SUV needs the injected dose",
        )
    if decay == "ADMIN":
        return SuvInfo(weight * 1000.0 / dose, units, weight, dose, half_life, decay, decayed_dose_bq=dose,
                       note="decay corrected to the injection time: dose not decayed")
    if decay not in ("START", "NONE"):
        raise VolumeError(folder, f"DecayCorrection (0054,1102) is {decay or 'missing'}; volgan knows START, ADMIN and NONE")
    if not half_life or half_life <= 0:
        raise VolumeError(
            folder, "RadionuclideHalfLife (0018,1075) is missing or not positive; SUV needs it to decay the dose"
        )

    start, start_note = _scan_start(datasets)
    if start is None:
        raise VolumeError(folder, "SeriesDate/SeriesTime (0008,0021/0031) and AcquisitionTime (0008,0032) are missing")
    injection = _parse_dt(item.get("RadiopharmaceuticalStartDateTime"))
    notes = [start_note]
    if injection is None:
        date = first.get("SeriesDate") or first.get("AcquisitionDate")
        injection = _datetime(date, item.get("RadiopharmaceuticalStartTime"))
        if injection is None:
            raise VolumeError(
                folder,
                "RadiopharmaceuticalStartDateTime (0018,1078) and RadiopharmaceuticalStartTime (0018,1072) are missing",
            )
        notes.append("injection time from RadiopharmaceuticalStartTime on the series date")
        if injection > start:  # injected before midnight, scanned after it
            injection -= dt.timedelta(days=1)
            notes.append("injection taken to be on the day before (the scan started after midnight)")
    uptake = (start - injection).total_seconds()
    if uptake < 0:
        raise VolumeError(
            folder, f"the injection ({injection}) is after the scan start ({start}); check the times in the headers"
        )
    decayed = dose * 2.0 ** (-uptake / half_life)
    if decay == "NONE":
        notes.append("DecayCorrection NONE: dose decayed to the scan start; slices acquired later are not decay "
                     "corrected, so their SUV is underestimated")
    return SuvInfo(
        weight * 1000.0 / decayed, units, weight, dose, half_life, decay, injection, start, decayed, "; ".join(notes)
    )


def read_suv_info(folder: str | os.PathLike, files: Sequence[str | os.PathLike] | None = None) -> SuvInfo:
    """:func:`suv_info` of the PET series in ``folder`` (``files``: its slices, default all files)."""
    folder = os.fspath(folder)
    if files is None:
        files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if not f.startswith("."))
    try:
        datasets = [pydicom.dcmread(os.fspath(f), stop_before_pixels=True) for f in files]
    except (InvalidDicomError, OSError) as err:
        raise VolumeError(folder, f"DICOM headers could not be read ({err})") from err
    return suv_info(datasets, folder)
