from __future__ import annotations

import gzip
import os

import nibabel as nib
import numpy as np
import pytest

from volgan.io import Volume, VolumeError, read_nifti, read_volume, write_nifti


def test_roundtrip_keeps_affine_values_and_units(nifti_file, tmp_path):
    path, arr, affine = nifti_file
    vol = read_volume(path, units="a.u.")
    assert vol.shape == arr.shape
    np.testing.assert_allclose(vol.array, arr)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-5)
    assert vol.dtype == np.int16
    np.testing.assert_allclose(vol.spacing, (1.2, 0.9, 2.5), atol=1e-5)
    out = write_nifti(vol.with_array(vol.array * 2), tmp_path / "copy.nii.gz")
    back = read_nifti(out)
    np.testing.assert_allclose(back.array, arr * 2)
    np.testing.assert_allclose(back.affine, affine, atol=1e-5)
    assert b"units=a.u." in nib.load(out).header["descrip"].tobytes()


def test_scaled_nifti_applies_slope(tmp_path):
    img = nib.Nifti1Image(np.ones((4, 4, 4), np.int16), np.eye(4))
    img.header.set_slope_inter(2.5, 1.0)
    nib.save(img, tmp_path / "s.nii")
    np.testing.assert_allclose(read_nifti(tmp_path / "s.nii").array, 3.5)


def test_trailing_singleton_dimension_is_squeezed(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((5, 6, 7, 1), np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    assert read_nifti(tmp_path / "v.nii.gz").shape == (5, 6, 7)


def _expect(path, *words):
    with pytest.raises(VolumeError) as info:
        read_volume(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message
    return message


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.nii.gz", "does not exist")


def test_corrupted_gzip(nifti_file):
    path, _, _ = nifti_file
    data = bytearray(path.read_bytes())
    data[30:200] = os.urandom(170)
    path.write_bytes(bytes(data))
    _expect(path, "NIfTI")


def test_truncated_nifti(tmp_path):
    path = tmp_path / "trunc.nii"
    nib.save(nib.Nifti1Image(np.ones((16, 16, 16), np.float32), np.eye(4)), path)
    path.write_bytes(path.read_bytes()[:2000])
    _expect(path, "truncated")


def test_truncated_gzip_nifti(nifti_file):
    path, _, _ = nifti_file
    path.write_bytes(path.read_bytes()[:-400])
    _expect(path)


def test_2d_image_rejected(tmp_path):
    path = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((10, 12), np.float32), np.eye(4)), path)
    _expect(path, "2D")


def test_4d_series_rejected(tmp_path):
    path = tmp_path / "series.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((6, 6, 6, 3), np.float32), np.eye(4)), path)
    _expect(path, "4D")


def test_all_zero_volume_rejected(tmp_path):
    path = tmp_path / "empty.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((6, 6, 6), np.float32), np.eye(4)), path)
    _expect(path, "empty")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_rejected(tmp_path, bad):
    arr = np.ones((6, 6, 6), np.float32)
    arr[2, 3, 4] = bad
    path = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), path)
    _expect(path, "NaN or infinite", "1 NaN")


def test_text_file_with_nifti_name(tmp_path):
    path = tmp_path / "notes.nii.gz"
    path.write_text("this is not an image\n")
    _expect(path, "NIfTI")


def test_plain_gzip_of_text_with_nifti_name(tmp_path):
    path = tmp_path / "text.nii.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"hello" * 100)
    _expect(path, "NIfTI")


def test_enormous_spacing_rejected(tmp_path):
    path = tmp_path / "huge.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((6, 6, 6), np.float32), np.diag([1.0, 1.0, 5000.0, 1.0])), path)
    _expect(path, "spacing", "5000")


def test_unknown_extension(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG")
    _expect(path, "neither a NIfTI")


def test_unwritable_output_folder_is_refused(read_only_dir):
    with pytest.raises(VolumeError) as info:
        write_nifti(Volume(np.ones((4, 4, 4), np.float32), np.eye(4)), read_only_dir / "x.nii.gz")
    assert f"{read_only_dir}: output folder is not writable" in str(info.value)
    assert list(read_only_dir.iterdir()) == []


def test_write_leaves_no_partial_file_on_failure(tmp_path, monkeypatch):
    vol = Volume(np.ones((4, 4, 4), np.float32), np.eye(4))

    def broken_save(img, filename):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", broken_save)
    with pytest.raises(VolumeError, match="disk full"):
        write_nifti(vol, tmp_path / "out.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_units_written_by_volgan_come_back(tmp_path):
    write_nifti(Volume(np.ones((4, 4, 4), np.float32), np.eye(4), units="SUV"), tmp_path / "suv.nii.gz")
    assert read_nifti(tmp_path / "suv.nii.gz").units == "SUV"
    assert read_nifti(tmp_path / "suv.nii.gz", units="Bq/ml").units == "Bq/ml"  # the caller's word wins
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), tmp_path / "foreign.nii.gz")
    assert read_nifti(tmp_path / "foreign.nii.gz").units == "a.u."


@pytest.mark.parametrize("shape", [(48, 48), (48, 48, 1), (1, 48, 48), (48, 1, 48), (48, 48, 1, 1)])
def test_a_single_slice_is_refused_however_it_is_stored(tmp_path, shape):
    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(shape, np.float32), np.eye(4)), path)
    message = _expect(path, "2D image", f"shape {shape}", "3D volume")
    assert "at least 2 voxels along every axis" in message or len(shape) == 2


def test_two_slices_are_a_small_volume(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((48, 48, 2), np.float32), np.eye(4)), tmp_path / "thin.nii.gz")
    assert read_volume(tmp_path / "thin.nii.gz").shape == (48, 48, 2)
