"""TargetGridPredictor: resampling onto the target grid before a same-grid predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import oblique_affine
from volgan.inference import Predictor
from volgan.inference.target_grid import TargetGridPredictor
from volgan.io import Volume


class Recorder:
    """A same-grid predictor that records what it was given and returns it doubled."""

    def __init__(self):
        self.seen: list[Volume] = []

    def predict(self, volume: Volume) -> Volume:
        self.seen.append(volume)
        return volume.with_array(volume.array * 2)


def test_thick_input_is_resampled_then_refined_on_the_target_grid():
    thick = Volume(np.full((6, 5, 3), 7.0, np.float32), oblique_affine(spacing=(1.0, 1.0, 4.0)))
    inner = Recorder()
    out = TargetGridPredictor(inner, spacing=1.0, interpolation="linear").predict(thick)
    assert inner.seen[0].shape == (6, 5, 12) and out.shape == (6, 5, 12)
    np.testing.assert_allclose(out.array, 14.0, atol=1e-5)
    np.testing.assert_allclose(out.affine, inner.seen[0].affine)
    expected_origin = thick.affine @ np.array([0.0, 0.0, -0.5 + 1 / 8, 1.0])
    np.testing.assert_allclose(out.affine[:3, 3], expected_origin[:3], atol=1e-9)


def test_spacing_none_passes_the_grid_through():
    vol = Volume(np.random.default_rng(0).random((4, 5, 6)).astype(np.float32), oblique_affine())
    inner = Recorder()
    out = TargetGridPredictor(inner, spacing=None).predict(vol)
    assert inner.seen[0] is vol
    np.testing.assert_array_equal(out.affine, vol.affine)


def test_with_the_real_predictor_and_an_identity_network():
    class Identity(torch.nn.Module):
        def forward(self, x):
            return x

    thick = Volume(np.random.default_rng(1).random((12, 10, 4)).astype(np.float32) + 1, np.diag([1.0, 1.0, 4.0, 1.0]))
    pred = TargetGridPredictor(Predictor(Identity(), roi_size=(8, 8, 8), device="cpu"), spacing=1.0, interpolation="cubic")
    out = pred.predict(thick)
    assert out.shape == (12, 10, 16)
    np.testing.assert_allclose(out.array, pred.prepare(thick).array, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 3.0), (1.0, 1.0, 5.0), (1.0, 1.0, 6.0), (2.0, 2.0, 3.0),
                                     (0.8, 0.8, 4.0)])
def test_any_slice_spacing_comes_back_on_the_one_mm_grid_of_the_same_extent(spacing):
    thick = Volume(np.full((10, 5, 4), 3.0, np.float32), oblique_affine(spacing=spacing))
    out = TargetGridPredictor(Recorder(), spacing=1.0, interpolation="cubic").predict(thick)
    assert out.shape == tuple(int(round(n * s)) for n, s in zip(thick.shape, spacing))
    np.testing.assert_allclose(out.spacing, (1.0, 1.0, 1.0), atol=1e-9)
    # the same extent: the outer faces of the first and last voxels coincide
    for corner in ((-0.5, -0.5, -0.5), (n - 0.5 for n in thick.shape)):
        corner = np.array([*corner, 1.0])
        scaled = corner.copy()
        scaled[:3] = (corner[:3] + 0.5) * np.asarray(out.shape) / np.asarray(thick.shape) - 0.5
        np.testing.assert_allclose(out.affine @ scaled, thick.affine @ corner, atol=1e-6)
    np.testing.assert_allclose(out.array, 6.0, atol=1e-4)


@pytest.mark.parametrize("thick_axis", [0, 1, 2])
def test_the_thick_axis_reaches_the_network_as_its_slice_axis_and_comes_back(thick_axis):
    spacing = [1.0, 1.0, 1.0]
    spacing[thick_axis] = 4.0
    rng = np.random.default_rng(thick_axis)
    thick = Volume(rng.random((6, 5, 4)).astype(np.float32) + 1, oblique_affine(spacing=tuple(spacing)))
    plain = TargetGridPredictor(Recorder(), spacing=1.0, interpolation="linear").predict(thick)
    inner = Recorder()
    out = TargetGridPredictor(inner, spacing=1.0, interpolation="linear", slice_axis=2).predict(thick)
    seen = inner.seen[0]
    # the network sees the thin grid with the formerly thick axis last, at the same world positions
    assert seen.shape[2] == 4 * thick.shape[thick_axis]
    np.testing.assert_allclose(np.linalg.norm(seen.affine[:3, 2]), 1.0)
    np.testing.assert_allclose(seen.affine @ [1, 2, 3, 1], plain.affine @ np.array([1, 2, 3, 1])[[*{
        0: (2, 1, 0), 1: (0, 2, 1), 2: (0, 1, 2)}[thick_axis], 3]])
    # and the output is on the input's own target grid, voxel for voxel
    assert out.shape == plain.shape
    np.testing.assert_allclose(out.affine, plain.affine)
    np.testing.assert_allclose(out.array, plain.array)


def test_isotropic_inputs_and_kspace_mode_are_not_turned():
    vol = Volume(np.ones((4, 5, 6), np.float32), oblique_affine(spacing=(1.0, 1.2, 1.0)))
    inner = Recorder()
    TargetGridPredictor(inner, spacing=1.0, slice_axis=2).predict(vol)
    assert inner.seen[0].shape == (4, 6, 6)
    thick = Volume(np.ones((4, 5, 6), np.float32), oblique_affine(spacing=(4.0, 1.0, 1.0)))
    TargetGridPredictor(inner, spacing=None, slice_axis=2).predict(thick)
    assert inner.seen[1] is thick
    with pytest.raises(ValueError, match="slice_axis"):
        TargetGridPredictor(inner, slice_axis=3)
