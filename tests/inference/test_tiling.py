from __future__ import annotations

import numpy as np
import pytest
from monai.data.utils import dense_patch_slices

from volgan.inference.tiling import fitted_plan, grid_plan


@pytest.mark.parametrize("shape,roi,overlap", [((40, 33, 21), (16, 16, 16), 0.25), ((64, 70, 9), (64, 32, 9), 0.5)])
def test_grid_plan_places_windows_as_monai_does(shape, roi, overlap):
    interval = [r if r == s else max(int(r * (1 - overlap)), 1) for s, r in zip(shape, roi)]
    expected = sorted(tuple(sl.start for sl in w) for w in dense_patch_slices(shape, roi, interval))
    got = sorted(tuple(sl.start for sl in w) for w in grid_plan(shape, roi, overlap).windows())
    assert got == expected


def test_grid_plan_refuses_windows_larger_than_the_volume():
    with pytest.raises(ValueError, match="smaller than the window"):
        grid_plan((10, 40, 40), (16, 16, 16), 0.25)


@pytest.mark.parametrize("shape", [(192, 224, 192), (512, 512, 512), (97, 130, 31), (20, 20, 20)])
def test_fitted_plan_covers_the_volume_with_the_margin(shape):
    max_window, margin = (128, 100, 64), 16
    plan = fitted_plan(shape, max_window, margin)
    for size, window, starts, cap in zip(shape, plan.window, plan.starts, max_window):
        assert window <= max(cap, size if size <= cap else cap)
        assert starts[0] == 0 and starts[-1] + window == size
        covered = np.zeros(size, bool)
        for s in starts:
            covered[s : s + window] = True
        assert covered.all()
        gaps = np.diff(starts)
        assert np.all(window - gaps >= margin)
    assert plan.computed_voxels >= np.prod(shape)


def test_fitted_plan_computes_fewer_voxels_than_the_default_grid():
    shape = (192, 224, 192)
    fitted = fitted_plan(shape, (128, 128, 128), 16)
    grid = grid_plan(shape, (64, 64, 64), 0.25)
    assert fitted.computed_voxels / np.prod(shape) < 1.3
    assert grid.computed_voxels / np.prod(shape) > 2.5
