"""Headers whose claimed voxel data the file cannot hold, or memory cannot take, are refused before reading."""

from __future__ import annotations

import gzip
import time

import nibabel as nib
import numpy as np
import pytest

from volgan.inference.batch_runner import BatchRunner
from volgan.io import Volume, VolumeError, read_volume
from volgan.io.claimed_size import memory_budget


def forged_header(shape, dtype=np.float32) -> bytes:
    """A NIfTI-1 header (and empty extension flag) claiming ``shape`` voxels of ``dtype``."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_xyzt_units("mm", "sec")
    header["vox_offset"] = 352
    return header.binaryblock + b"\x00" * 4


def write_forged_gzip(path, shape, payload: int = 1 << 20):
    """A gzip NIfTI of a few KB: the forged header followed by ``payload`` zero bytes."""
    with gzip.open(path, "wb") as f:
        f.write(forged_header(shape) + b"\x00" * payload)
    return path


@pytest.mark.parametrize("side", [2048, 1400, 32767])
def test_forged_gzip_header_is_refused_quickly_and_names_the_claim(tmp_path, side):
    path = write_forged_gzip(tmp_path / f"forged{side}.nii.gz", (side, side, side))
    assert path.stat().st_size < 4000
    start = time.perf_counter()
    with pytest.raises(VolumeError) as info:
        read_volume(path)
    assert time.perf_counter() - start < 2.0
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert f"{side}x{side}x{side} float32" in message, message
    assert "cannot hold" in message, message


def test_short_uncompressed_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "short.nii"
    path.write_bytes(forged_header((300, 300, 300)) + b"\x00" * 5000)
    with pytest.raises(VolumeError) as info:
        read_volume(path)
    message = str(info.value)
    assert f"{path}: " in message and "300x300x300 float32" in message and "108000000 bytes" in message
    assert "holds 5352" in message, message


def test_truncated_gzip_within_the_ratio_bound_is_refused_without_reading_it_all(tmp_path):
    # 64^3 float32 = 1 MiB claimed; the file holds only 600 KiB of incompressible voxel data
    rng = np.random.default_rng(0)
    path = tmp_path / "short.nii.gz"
    with gzip.open(path, "wb") as f:
        f.write(forged_header((64, 64, 64)) + rng.random(600 * 256, dtype=np.float32).tobytes())
    with pytest.raises(VolumeError) as info:
        read_volume(path)
    message = str(info.value)
    assert "64x64x64 float32" in message and "holds only 614400" in message, message


def test_a_concatenated_multi_member_gzip_is_read(tmp_path):
    """The gzip trailer names only the last member's size: the reader must not take it for the whole."""
    arr = np.arange(8 * 9 * 10, dtype=np.float32).reshape(8, 9, 10) + 1
    raw = forged_header(arr.shape) + arr.tobytes(order="F")
    path = tmp_path / "members.nii.gz"
    path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    np.testing.assert_array_equal(read_volume(path).array, arr)


def test_memory_budget_refuses_a_valid_volume_that_would_not_fit(tmp_path, monkeypatch):
    path = tmp_path / "valid.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((40, 40, 40), np.int16), np.eye(4)), path)
    monkeypatch.setenv("VOLGAN_MEMORY_BUDGET", "100K")
    with pytest.raises(VolumeError) as info:
        read_volume(path)
    message = str(info.value)
    assert "40x40x40 int16" in message and "memory budget" in message and "VOLGAN_MEMORY_BUDGET" in message
    monkeypatch.setenv("VOLGAN_MEMORY_BUDGET", "1M")
    assert read_volume(path).shape == (40, 40, 40)


def test_memory_budget_parsing(monkeypatch):
    monkeypatch.setenv("VOLGAN_MEMORY_BUDGET", "2G")
    assert memory_budget() == 2 * 1024**3
    monkeypatch.setenv("VOLGAN_MEMORY_BUDGET", "12345")
    assert memory_budget() == 12345
    monkeypatch.setenv("VOLGAN_MEMORY_BUDGET", "none")
    assert memory_budget() is None
    monkeypatch.setenv("VOLGAN_MEMORY_BUDGET", "lots")
    with pytest.raises(ValueError, match="VOLGAN_MEMORY_BUDGET"):
        memory_budget()
    monkeypatch.delenv("VOLGAN_MEMORY_BUDGET")
    default = memory_budget()
    assert default is None or 0 < default < 1 << 50


class Doubler:
    def predict(self, volume: Volume) -> Volume:
        return volume.with_array(volume.array * 2)


def test_batch_reports_the_forged_file_and_goes_on(tmp_path, nifti_file):
    good, arr, _ = nifti_file
    inputs = tmp_path / "in"
    inputs.mkdir()
    good.rename(inputs / "a_good.nii.gz")
    write_forged_gzip(inputs / "b_forged.nii.gz", (2048, 2048, 2048))
    nib.save(nib.Nifti1Image(arr.astype(np.int16), np.eye(4)), inputs / "c_good.nii.gz")
    start = time.perf_counter()
    results = BatchRunner(Doubler(), inputs, tmp_path / "out", raise_on_failure=False).run()
    assert time.perf_counter() - start < 10.0
    status = {r.input.rsplit("/", 1)[-1]: r for r in results}
    assert status["a_good.nii.gz"].status == "done" and status["c_good.nii.gz"].status == "done"
    forged = status["b_forged.nii.gz"]
    assert forged.status == "failed" and "2048x2048x2048 float32" in forged.error
    assert str(inputs / "b_forged.nii.gz") in forged.error
