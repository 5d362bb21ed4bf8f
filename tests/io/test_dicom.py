from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from volgan.io import VolumeError, read_volume
from volgan.data.sitk_image import array_to_sitk


def write_series(folder, array: np.ndarray, affine: np.ndarray) -> None:
    """Write a real DICOM series (one file per slice) with SimpleITK/GDCM."""
    image = sitk.Cast(array_to_sitk(array, affine), sitk.sitkInt16)
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.1"
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        origin = image.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in {
            "0008|0060": "MR",
            "0020|000e": series_uid,
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(map(str, origin)),
            "0020|0037": "\\".join(map(str, (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7]))),
            "0018|0050": str(image.GetSpacing()[2]),
            "0008|0018": f"{series_uid}.{k + 1}",
        }.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(slice_)


def test_dicom_series_matches_nifti_geometry(tmp_path):
    rng = np.random.default_rng(0)
    array = rng.integers(1, 500, size=(12, 10, 6)).astype(np.float32)
    affine = np.array([[0.8, 0.0, 0.0, -40.0], [0.0, 0.8, 0.0, 22.0], [0.0, 0.0, 3.0, 5.0], [0, 0, 0, 1.0]])
    write_series(tmp_path / "series", array, affine)
    vol = read_volume(tmp_path / "series")
    assert vol.shape == array.shape
    np.testing.assert_allclose(vol.array, array)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-4)
    assert vol.meta["modality"] == "MR"


def test_folder_without_dicom_is_refused(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.dcm").write_bytes(b"not a dicom file" * 10)
    with pytest.raises(VolumeError) as info:
        read_volume(folder)
    assert str(folder) in str(info.value) and "no readable DICOM series" in str(info.value)
