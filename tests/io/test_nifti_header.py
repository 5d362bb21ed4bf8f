"""Output headers keep the input's sform/qform codes, spatial units, intent and description; units are
converted to mm in memory and back on writing."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import oblique_affine, phantom
from volgan.data.target_grid import resample_to_target
from volgan.io import Volume, read_nifti, write_nifti


def save(path, affine, *, units="mm", sform_code=2, qform=None, qform_code=0, intent=None, descrip=None):
    img = nib.Nifti1Image(phantom(), affine)
    img.header.set_xyzt_units(units, "msec")
    img.set_sform(affine, sform_code)
    img.set_qform(affine if qform is None else qform, qform_code)
    if intent is not None:
        img.header.set_intent(*intent)
    if descrip is not None:
        img.header["descrip"] = descrip
    nib.save(img, path)
    return path


def test_mni_sform_and_scanner_qform_keep_their_codes_and_matrices(tmp_path):
    sform = oblique_affine()
    qform = np.diag([1.2, 0.9, 2.5, 1.0])
    qform[:3, 3] = (5.0, -3.0, 11.0)
    src = save(tmp_path / "mni.nii.gz", sform, sform_code=4, qform=qform, qform_code=1)
    vol = read_nifti(src)
    np.testing.assert_allclose(vol.affine, sform, atol=1e-5)
    out = nib.load(write_nifti(vol.with_array(vol.array + 1), tmp_path / "out.nii.gz"))
    assert int(out.header["sform_code"]) == 4 and int(out.header["qform_code"]) == 1
    np.testing.assert_allclose(out.header.get_sform(), sform, atol=1e-5)
    np.testing.assert_allclose(out.header.get_qform(), qform, atol=1e-5)
    assert out.header.get_xyzt_units() == ("mm", "msec")


def test_a_resampled_output_carries_both_forms_onto_its_grid(tmp_path):
    sform = np.diag([1.0, 1.0, 4.0, 1.0])
    qform = sform.copy()
    qform[:3, 3] = (10.0, 20.0, 30.0)
    vol = read_nifti(save(tmp_path / "thick.nii.gz", sform, sform_code=4, qform=qform, qform_code=1))
    fine = resample_to_target(vol, 1.0)
    out = nib.load(write_nifti(fine, tmp_path / "fine.nii.gz"))
    index_map = np.linalg.inv(sform) @ fine.affine
    assert int(out.header["sform_code"]) == 4 and int(out.header["qform_code"]) == 1
    np.testing.assert_allclose(out.header.get_sform(), fine.affine, atol=1e-5)
    np.testing.assert_allclose(out.header.get_qform(), qform @ index_map, atol=1e-5)


@pytest.mark.parametrize(("units", "scale"), [("meter", 1000.0), ("micron", 0.001), ("mm", 1.0)])
def test_spatial_units_are_mm_in_memory_and_the_input_units_on_disk(tmp_path, units, scale):
    spacing_mm = np.array([0.15, 0.2, 0.5]) if units == "micron" else np.array([1.2, 0.9, 2.5])
    file_affine = oblique_affine(tuple(spacing_mm / scale))
    file_affine[:3, 3] /= scale
    vol = read_nifti(save(tmp_path / f"{units}.nii.gz", file_affine, units=units))
    np.testing.assert_allclose(vol.spacing, spacing_mm, rtol=1e-5)
    np.testing.assert_allclose(vol.affine[:3, 3], file_affine[:3, 3] * scale, rtol=1e-5)
    out = nib.load(write_nifti(vol.with_array(vol.array * 2), tmp_path / "out.nii.gz"))
    assert out.header.get_xyzt_units() == (units, "msec")
    np.testing.assert_allclose(out.affine, file_affine, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(read_nifti(tmp_path / "out.nii.gz").spacing, spacing_mm, rtol=1e-5)


def test_a_micron_file_with_150_micron_voxels_is_accepted(tmp_path):
    vol = read_nifti(save(tmp_path / "micro.nii.gz", np.diag([150.0, 150.0, 150.0, 1.0]), units="micron"))
    np.testing.assert_allclose(vol.spacing, (0.15, 0.15, 0.15), rtol=1e-6)


def test_unknown_units_are_taken_as_mm(tmp_path):
    vol = read_nifti(save(tmp_path / "unknown.nii.gz", np.diag([2.0, 2.0, 3.0, 1.0]), units="unknown"))
    np.testing.assert_allclose(vol.spacing, (2.0, 2.0, 3.0))


def test_intent_and_description_are_kept_and_value_units_still_round_trip(tmp_path):
    src = save(tmp_path / "stat.nii.gz", np.eye(4), intent=("t test", (12.0,), "tmap"), descrip="FSL5.0 tstat")
    vol = read_nifti(src).with_array(phantom() * 0.5, units="SUV")
    out = nib.load(write_nifti(vol, tmp_path / "out.nii.gz"))
    assert out.header.get_intent() == ("t test", (12.0,), "tmap")
    assert out.header["descrip"].tobytes().rstrip(b"\x00") == b"FSL5.0 tstat"
    assert read_nifti(tmp_path / "out.nii.gz").units == "SUV"


def test_a_volume_made_in_memory_is_written_in_mm_with_its_units_described(tmp_path):
    out = nib.load(write_nifti(Volume(phantom(), np.diag([2.0, 2.0, 2.0, 1.0]), units="HU"), tmp_path / "m.nii.gz"))
    assert out.header.get_xyzt_units()[0] == "mm"
    assert b"volgan units=HU" in out.header["descrip"].tobytes()
    assert int(out.header["sform_code"]) > 0
    assert read_nifti(tmp_path / "m.nii.gz").units == "HU"
