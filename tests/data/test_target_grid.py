"""Target grid geometry and resampling of thick slices onto it."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import oblique_affine
from volgan.data.target_grid import resample_to_target, target_grid
from volgan.degrade import thick_slices
from volgan.io import Volume


def test_one_mm_voxels_tile_each_four_mm_slab():
    affine = np.diag([1.0, 1.0, 4.0, 1.0])
    affine[:3, 3] = (10.0, -5.0, 20.0)
    shape, out, _ = target_grid((6, 5, 3), affine, 1.0)
    assert shape == (6, 5, 12)
    np.testing.assert_allclose(np.linalg.norm(out[:3, :3], axis=0), 1.0)
    # slab 0 spans z = 18..22 mm: the first 1 mm centre is 0.5 mm inside its edge
    assert out[2, 3] == pytest.approx(18.5)
    centres = out[2, 2] * np.arange(12) + out[2, 3]
    np.testing.assert_allclose(centres.reshape(3, 4).mean(1), affine[2, 2] * np.arange(3) + 20.0)
    np.testing.assert_allclose(out[:2], affine[:2])  # in-plane axes already at 1 mm: unchanged


def test_thick_then_target_grid_is_the_thin_grid_on_an_oblique_affine():
    thin_affine = oblique_affine(spacing=(1.0, 1.0, 1.0))
    thin = Volume(np.zeros((10, 9, 16), np.float32), thin_affine)
    thick = thick_slices(thin, 4, axis=2)
    shape, affine, _ = target_grid(thick.shape, thick.affine, 1.0)
    assert shape == thin.shape
    np.testing.assert_allclose(affine, thin_affine, atol=1e-9)


@pytest.mark.parametrize("interpolation", ["nearest", "linear", "cubic"])
def test_resampling_keeps_a_constant_and_a_linear_ramp_across_slabs(interpolation):
    z = np.arange(24, dtype=np.float32)
    thick = Volume(np.broadcast_to(3.0 + 2.0 * z, (4, 4, 24)).copy(), np.diag([1.0, 1.0, 4.0, 1.0]))
    out = resample_to_target(thick, 1.0, interpolation)
    assert out.shape == (4, 4, 96) and out.spacing == (1.0, 1.0, 1.0)
    # value at each 1 mm centre: the ramp evaluated at its position in thick-voxel units
    pos = (np.arange(96) + 0.5) / 4 - 0.5
    inside = (pos >= 0) & (pos <= 23)
    expected = 3.0 + 2.0 * np.clip(pos, 0, 23)
    if interpolation == "nearest":
        expected = 3.0 + 2.0 * np.clip(np.round(pos), 0, 23)
        np.testing.assert_allclose(out.array[0, 0], expected, atol=1e-5)
    else:  # cubic: boundary handling (edge repeat) bends the ramp near the ends only
        if interpolation == "cubic":
            inside = (pos >= 6) & (pos <= 17)
        np.testing.assert_allclose(out.array[0, 0, inside], expected[inside], atol=1e-3)
    const = resample_to_target(thick.with_array(np.full((4, 4, 24), 5.0, np.float32)), 1.0, interpolation)
    np.testing.assert_allclose(const.array, 5.0, atol=1e-5)


def test_invalid_spacing_and_interpolation():
    vol = Volume(np.zeros((2, 2, 2), np.float32), np.eye(4))
    with pytest.raises(ValueError, match="positive"):
        resample_to_target(vol, 0.0)
    with pytest.raises(ValueError, match="interpolation"):
        resample_to_target(vol, 1.0, "sinc")


def test_a_target_grid_that_throws_away_in_plane_resolution_is_refused(tmp_path):
    import nibabel as nib

    from volgan.inference.target_grid import TargetGridPredictor
    from volgan.io import VolumeError, read_volume

    path = tmp_path / "micro.nii.gz"
    array = np.random.default_rng(0).random((50, 50, 4)).astype(np.float32) + 1
    nib.save(nib.Nifti1Image(array, np.diag([0.1, 0.1, 10.0, 1.0])), path)
    vol = read_volume(path)
    with pytest.raises(VolumeError) as info:
        resample_to_target(vol, 1.0)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "axis 0 from 50 to 5 voxels (0.1 mm -> 1 mm)" in message, message
    assert "axis 1 from 50 to 5" in message and "axis 2" not in message
    with pytest.raises(VolumeError, match="from 50 to 5 voxels"):
        TargetGridPredictor(predictor=None, spacing=1.0).prepare(vol)
    assert resample_to_target(vol, [0.1, 0.1, 1.0]).shape == (50, 50, 40)


def test_a_mild_coarsening_warns_and_a_negligible_one_is_silent(caplog):
    vol = Volume(np.ones((40, 40, 4), np.float32), np.diag([0.5, 0.5, 5.0, 1.0]), path="half.nii.gz")
    with caplog.at_level("WARNING", logger="volgan.data.target_grid"):
        assert resample_to_target(vol, 1.0).shape == (20, 20, 20)
    assert "half.nii.gz" in caplog.text and "axis 0 from 40 to 20 voxels" in caplog.text
    caplog.clear()
    near = Volume(np.ones((40, 40, 4), np.float32), np.diag([0.977, 0.977, 4.0, 1.0]))
    with caplog.at_level("WARNING", logger="volgan.data.target_grid"):
        resample_to_target(near, 1.0)
    assert caplog.text == ""
