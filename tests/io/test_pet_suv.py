"""SUV factors from DICOM PET headers, and PET series written with per-slice rescale slopes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pydicom
import pytest

from tests.conftest import oblique_affine, phantom
from volgan.io import Volume, VolumeError, read_suv_info, read_volume, write_pet_dicom_series

F18 = 6586.2
DOSE, WEIGHT = 370e6, 70.0
INJECTION = dt.datetime(2024, 5, 1, 9, 0, 0)
# 60 min uptake of F-18: dose * 2^(-3600 / 6586.2) = 253 314 180.24 Bq
SUV_PER_BQML_60MIN = 70_000.0 / 253_314_180.24164


def pet_series(folder, *, array=None, affine=None, **options):
    """A small PET series in Bq/ml (60 min after a 370 MBq injection, 70 kg unless ``options`` say otherwise)."""
    settings = dict(weight_kg=WEIGHT, injected_dose_bq=DOSE, injection_time=INJECTION,
                    series_time=INJECTION + dt.timedelta(minutes=60))
    settings.update(options)
    array = phantom((10, 8, 6)) * 150.0 if array is None else array
    volume = Volume(array, oblique_affine() if affine is None else affine, units="Bq/ml")
    write_pet_dicom_series(volume, folder, **settings)
    return volume


def edit_headers(folder, **changes):
    """Change (value) or delete (None) top-level tags in every file of ``folder``."""
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        for keyword, value in changes.items():
            if value is None:
                if keyword in ds:
                    delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        ds.save_as(path)


def test_start_decay_correction_gives_the_hand_computed_factor(tmp_path):
    pet_series(tmp_path / "pet")
    info = read_suv_info(tmp_path / "pet")
    assert info.factor == pytest.approx(SUV_PER_BQML_60MIN, rel=1e-9)
    assert info.uptake_s == 3600.0 and info.decay_correction == "START" and info.units == "BQML"
    assert info.decayed_dose_bq == pytest.approx(253_314_180.24, rel=1e-9)
    assert info.units_per_suv == pytest.approx(1 / SUV_PER_BQML_60MIN)


def test_admin_decay_correction_does_not_decay_the_dose(tmp_path):
    pet_series(tmp_path / "pet", decay_correction="ADMIN")
    info = read_suv_info(tmp_path / "pet")
    assert info.factor == pytest.approx(70_000.0 / 370e6, rel=1e-12)


def test_no_decay_correction_decays_to_the_scan_start_and_says_so(tmp_path):
    pet_series(tmp_path / "pet", decay_correction="NONE")
    info = read_suv_info(tmp_path / "pet")
    assert info.factor == pytest.approx(SUV_PER_BQML_60MIN, rel=1e-9)
    assert "not decay corrected" in info.note


def test_injection_before_midnight_with_start_time_only(tmp_path):
    """Only RadiopharmaceuticalStartTime (23:30), series after midnight: 60 min uptake, not -23 h."""
    pet_series(tmp_path / "pet", injection_time=dt.datetime(2024, 5, 1, 23, 30),
               series_time=dt.datetime(2024, 5, 2, 0, 30))
    for path in sorted((tmp_path / "pet").iterdir()):
        ds = pydicom.dcmread(path)
        del ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime
        ds.save_as(path)
    info = read_suv_info(tmp_path / "pet")
    assert info.injection_time == dt.datetime(2024, 5, 1, 23, 30)
    assert info.uptake_s == 3600.0
    assert info.factor == pytest.approx(SUV_PER_BQML_60MIN, rel=1e-9)
    assert "day before" in info.note


def test_series_time_after_the_first_acquisition_uses_the_acquisition(tmp_path):
    """A reprocessed series gets a later SeriesTime; the earliest AcquisitionTime is the scan start."""
    pet_series(tmp_path / "pet")
    edit_headers(tmp_path / "pet", SeriesTime="113000")
    info = read_suv_info(tmp_path / "pet")
    assert info.reference_time == INJECTION + dt.timedelta(minutes=60)
    assert "AcquisitionTime" in info.note


def test_gml_series_is_already_suv(tmp_path):
    pet_series(tmp_path / "pet", units="GML", array=phantom((10, 8, 6)) / 20.0)
    info = read_suv_info(tmp_path / "pet")
    assert info.factor == 1.0 and info.units == "GML"
    assert read_volume(tmp_path / "pet").units == "SUV"


def test_missing_weight_is_an_error_naming_the_folder_and_tag(tmp_path):
    pet_series(tmp_path / "pet", weight_kg=None)
    with pytest.raises(VolumeError) as info:
        read_suv_info(tmp_path / "pet")
    assert str(tmp_path / "pet") in str(info.value) and "PatientWeight (0010,1030)" in str(info.value)
    # reading the volume still works: the problem is kept for whoever needs SUV
    vol = read_volume(tmp_path / "pet")
    assert vol.units == "Bq/ml" and "PatientWeight (0010,1030)" in vol.meta["suv_error"]


def test_zero_dose_and_counts_units_are_errors(tmp_path):
    pet_series(tmp_path / "dose", injected_dose_bq=0.0)
    with pytest.raises(VolumeError, match=r"RadionuclideTotalDose \(0018,1074\).* is 0.0"):
        read_suv_info(tmp_path / "dose")
    pet_series(tmp_path / "counts", units="CNTS")
    with pytest.raises(VolumeError, match="Units CNTS, which has no SUV factor") as info:
        read_suv_info(tmp_path / "counts")
    assert str(tmp_path / "counts") in str(info.value)


def test_series_round_trip_with_per_slice_slopes(tmp_path):
    """Values within half a slice's slope, grid and affine (RAS+ <-> LPS) as written. The first
    slice has slope exactly 1: SimpleITK would otherwise read the whole series as its int16."""
    rng = np.random.default_rng(0)
    array = (rng.uniform(0, 1, (10, 8, 6)) * np.array([1, 1000, 10, 50000, 3, 200])).astype(np.float32)
    array[:, :, 0] = np.linspace(0, 32767, 80).round().reshape(10, 8)
    affine = oblique_affine()
    pet_series(tmp_path / "pet", array=array, affine=affine)
    slopes = [float(pydicom.dcmread(p, stop_before_pixels=True).RescaleSlope) for p in sorted((tmp_path / "pet").iterdir())]
    assert slopes[0] == 1.0 and len(set(slopes)) == 6
    vol = read_volume(tmp_path / "pet")
    assert vol.shape == array.shape and vol.units == "Bq/ml" and vol.meta["modality"] == "PT"
    np.testing.assert_allclose(vol.affine, affine, atol=1e-5)
    tolerance = array.max(axis=(0, 1)) / 32767 / 2 * 1.001 + 1e-6
    assert np.all(np.abs(vol.array - array).max(axis=(0, 1)) <= tolerance)
    assert vol.meta["suv"].factor == pytest.approx(SUV_PER_BQML_60MIN, rel=1e-9)


def test_left_handed_affine_is_refused(tmp_path):
    affine = np.diag([-1.0, 1.0, 1.0, 1.0])  # LAS: row x column runs against the slices
    with pytest.raises(ValueError, match="left-handed"):
        pet_series(tmp_path / "pet", affine=affine)
