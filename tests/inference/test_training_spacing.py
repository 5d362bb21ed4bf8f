"""Predictors run at their training voxel size and return on the input's grid; flip ensembles."""

from __future__ import annotations

import numpy as np
import pytest

from volgan.inference.flip_ensemble import FlipEnsemblePredictor, flip_axes
from volgan.inference.training_spacing import TrainingSpacingPredictor
from volgan.io.volume import Volume


class Recording:
    """Doubles its input and records the voxel sizes and shapes it was given."""

    def __init__(self):
        self.seen = []

    def predict(self, volume: Volume) -> Volume:
        self.seen.append((volume.spacing, volume.shape))
        return volume.with_array(2 * volume.array, units="doubled")


def smooth_volume(shape, spacing) -> Volume:
    grid = np.indices(shape).astype(np.float32) * np.asarray(spacing, dtype=np.float32).reshape(3, 1, 1, 1)
    array = np.sin(grid[0] / 9) + np.cos(grid[1] / 11) + 0.5 * np.sin(grid[2] / 7) + 3
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (10.0, -20.0, 5.0)
    return Volume(array.astype(np.float32), affine, units="a.u.")


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 2.0, 2.0), (2.0, 2.0, 3.0), (0.8, 0.8, 0.8)])
def test_inputs_run_at_the_training_spacing_and_return_on_their_grid(spacing):
    inner = Recording()
    wrapped = TrainingSpacingPredictor(inner, (1.0, 1.0))
    volume = smooth_volume((24, 20, 16), spacing)
    out = wrapped.predict(volume)
    assert inner.seen[0][0] == pytest.approx((1.0, 1.0, 1.0), abs=1e-6)
    assert out.shape == volume.shape
    np.testing.assert_allclose(out.affine, volume.affine)
    assert out.units == "doubled"
    inside = (slice(2, -2),) * 3  # edges repeat the edge voxels
    np.testing.assert_allclose(out.array[inside], 2 * volume.array[inside], rtol=0.02, atol=0.05)


def test_spacings_inside_the_range_pass_through_untouched():
    inner = Recording()
    volume = smooth_volume((8, 8, 8), (1.2, 1.2, 2.5))
    out = TrainingSpacingPredictor(inner, (0.8, 3.0)).predict(volume)
    assert inner.seen == [(volume.spacing, volume.shape)]
    np.testing.assert_array_equal(out.array, 2 * volume.array)


def test_only_axes_outside_the_range_are_resampled():
    inner = Recording()
    TrainingSpacingPredictor(inner, (0.8, 1.6)).predict(smooth_volume((20, 20, 8), (1.0, 1.0, 4.0)))
    assert inner.seen[0][0] == pytest.approx((1.0, 1.0, 1.6), abs=1e-6)
    assert inner.seen[0][1] == (20, 20, 20)


def test_disabled_wrapper_and_bad_ranges():
    inner = Recording()
    volume = smooth_volume((8, 8, 8), (2.0, 2.0, 2.0))
    TrainingSpacingPredictor(inner, (1.0, 1.0), enabled=False).predict(volume)
    assert inner.seen == [(volume.spacing, volume.shape)]
    with pytest.raises(ValueError, match="spacing_range"):
        TrainingSpacingPredictor(inner, (2.0, 1.0))


class FlipSensitive:
    """Adds a ramp along axis 0: the ensemble of a flip over axis 0 averages it out."""

    def predict(self, volume: Volume) -> Volume:
        ramp = np.arange(volume.shape[0], dtype=np.float32)[:, None, None]
        return volume.with_array(volume.array + ramp)


def test_flip_ensemble_averages_outputs_flipped_back():
    volume = smooth_volume((6, 5, 4), (1.0, 1.0, 1.0))
    single = FlipEnsemblePredictor(FlipSensitive(), flips=1).predict(volume)
    ensemble = FlipEnsemblePredictor(FlipSensitive(), flips=8).predict(volume)
    np.testing.assert_allclose(single.array - volume.array, np.arange(6)[:, None, None] + 0 * volume.array, atol=1e-5)
    np.testing.assert_allclose(ensemble.array, volume.array + 2.5, rtol=1e-6)  # mean of the ramp and its flip
    np.testing.assert_allclose(FlipEnsemblePredictor(Recording(), 8).predict(volume).array, 2 * volume.array, rtol=1e-6)


def test_flip_axes_are_distinct_and_start_with_the_identity():
    axes = flip_axes(8)
    assert axes[0] == () and len(set(axes)) == 8
    with pytest.raises(ValueError):
        flip_axes(3)
