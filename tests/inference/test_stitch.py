from __future__ import annotations

import numpy as np
import pytest
import torch

from volgan.inference.stitch import sliding_window
from volgan.inference.tiling import fitted_plan, grid_plan


class Recorder:
    """A point-wise 'network' (x^2 + 1) that records the shapes it was called with."""

    def __init__(self, out_shape=None):
        self.calls, self.out_shape = [], out_shape

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        y = x * x + 1
        return y if self.out_shape is None else y[..., : self.out_shape[-1]]


def test_one_window_plan_returns_the_network_output_without_blending():
    volume = np.random.default_rng(0).random((20, 18, 11), dtype=np.float32)
    plan = fitted_plan(volume.shape, (32, 32, 32), 8)
    assert len(plan) == 1
    forward = Recorder()
    out = sliding_window(volume, forward, plan, prepare=lambda x: 2 * x, batch_size=4)
    assert forward.calls == [(1, 1, 20, 18, 11)]
    np.testing.assert_array_equal(out, (2 * volume) ** 2 + 1)  # exact: no weights multiplied and divided out


def test_many_windows_blend_to_the_pointwise_result():
    volume = np.random.default_rng(1).random((40, 36, 30), dtype=np.float32)
    plan = grid_plan(volume.shape, (16, 16, 16), 0.25)
    forward = Recorder()
    out = sliding_window(volume, forward, plan, batch_size=3)
    assert len(forward.calls) == -(-len(plan) // 3)
    np.testing.assert_allclose(out, volume**2 + 1, rtol=1e-5)


def test_wrong_output_shape_is_an_error_in_both_paths():
    volume = np.zeros((16, 16, 16), np.float32)
    with pytest.raises(RuntimeError, match="differs from its input"):
        sliding_window(volume, Recorder(out_shape=(15,)), fitted_plan(volume.shape, (32, 32, 32), 8))
    with pytest.raises(RuntimeError, match="differs from its input"):
        sliding_window(volume, Recorder(out_shape=(7,)), grid_plan(volume.shape, (8, 8, 8), 0.25))


@pytest.mark.parametrize("plan_for, window", [(lambda shape: grid_plan(shape, (16, 16, 16), 0.25), (16, 16, 16)),
                                              (lambda shape: fitted_plan(shape, (24, 24, 24), 8), (24, 24, 24))])
def test_what_reaches_the_device_does_not_grow_with_the_volume(plan_for, window):
    """Only batches of windows reach ``forward`` (on an accelerator: device memory is set by the
    window and the batch size), and the stitched result is a host array, for volumes from 1x to
    14x the smallest."""
    for shape in [(40, 40, 40), (64, 56, 48), (96, 96, 96)]:
        volume = np.random.default_rng(2).random(shape, dtype=np.float32)
        forward = Recorder()
        out = sliding_window(volume, forward, plan_for(shape), batch_size=2)
        assert isinstance(out, np.ndarray) and out.shape == shape
        assert len(forward.calls) > 1 and max(np.prod(c) for c in forward.calls) <= 2 * np.prod(window)
