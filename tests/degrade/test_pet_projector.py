"""PET projector: adjointness, count conservation (path length per voxel) and line integrals."""

from __future__ import annotations

import numpy as np
import pytest

from volgan.degrade import ParallelBeamProjector, parallel_projector


@pytest.fixture(scope="module")
def projector():
    return ParallelBeamProjector((20, 26), (2.0, 1.5), n_angles=30, bin_mm=2.5, n_subsets=4)


def test_adjoint_of_whole_and_of_each_subset(projector):
    rng = np.random.default_rng(0)
    x = rng.random((20, 26, 3)).astype(np.float32)
    y = rng.random((projector.n_angles, projector.n_bins, 3)).astype(np.float32)
    lhs = np.vdot(projector.forward(x).astype(np.float64), y)
    rhs = np.vdot(x.astype(np.float64), projector.back(y))
    assert lhs == pytest.approx(rhs, rel=1e-5)
    for s, views in enumerate(projector.subset_views):
        lhs = np.vdot(projector.forward_subset(x, s).astype(np.float64), y[views])
        rhs = np.vdot(x.astype(np.float64), projector.back_subset(y[views], s))
        assert lhs == pytest.approx(rhs, rel=1e-5)


def test_subsets_interleave_views_and_do_not_change_the_projection(projector):
    assert sorted(np.concatenate(projector.subset_views).tolist()) == list(range(projector.n_angles))
    np.testing.assert_array_equal(projector.subset_views[1][:3], [1, 5, 9])
    plain = ParallelBeamProjector((20, 26), (2.0, 1.5), n_angles=30, bin_mm=2.5)
    x = np.random.default_rng(1).random((20, 26, 2)).astype(np.float32)
    np.testing.assert_allclose(projector.forward(x), plain.forward(x), rtol=1e-6)


def test_counts_are_conserved_per_view(projector):
    # One view sums the pixel weights over its bins: the two linear-interpolation weights add up to
    # the path length per voxel, area / bin width = 2.0 * 1.5 / 2.5 = 1.2 mm.
    assert projector.path_length_per_voxel == pytest.approx(1.2)
    point = np.zeros((20, 26, 1), np.float32)
    point[13, 4, 0] = 1.0
    per_view = projector.forward(point).sum(axis=(1, 2))
    np.testing.assert_allclose(per_view, 1.2, rtol=1e-6)
    volume = np.random.default_rng(2).random((20, 26, 3)).astype(np.float32)
    sino = projector.forward(volume)
    expected = projector.n_angles * 1.2 * volume.sum(axis=(0, 1), dtype=np.float64)
    np.testing.assert_allclose(sino.sum(axis=(0, 1), dtype=np.float64), expected, rtol=1e-5)


def test_sinogram_is_the_line_integral_of_a_disk():
    proj = ParallelBeamProjector((81, 81), (1.0, 1.0), n_angles=8, bin_mm=1.0)
    grid = np.arange(81) - 40.0
    r = np.hypot(grid[:, None], grid[None, :])
    disk = (r <= 30.0).astype(np.float32)[..., None]
    sino = proj.forward(disk)[..., 0]
    centre = (proj.n_bins - 1) // 2
    np.testing.assert_allclose(sino[:, centre], 60.0, rtol=0.03)  # chord through the centre: 2R
    # a chord at distance 18 mm: 2 sqrt(R^2 - d^2) = 48 mm
    np.testing.assert_allclose(sino[:, centre + 18], 48.0, rtol=0.05)
    assert sino[:, centre + 33].max() == 0.0


def test_every_pixel_is_in_the_field_of_view():
    proj = ParallelBeamProjector((9, 15), (1.0, 2.0), n_angles=7, bin_mm=1.0)
    corners = np.zeros((9, 15, 1), np.float32)
    corners[[0, 0, -1, -1], [0, -1, 0, -1]] = 1.0
    assert proj.forward(corners).sum() == pytest.approx(7 * 2.0 * 4, rel=1e-6)


def test_cached_per_geometry_and_clear_errors():
    assert parallel_projector((8, 8), (1.0, 1.0), 6, 1.0) is parallel_projector((8, 8), (1.0, 1.0), 6, 1.0)
    with pytest.raises(ValueError, match="bin_mm"):
        ParallelBeamProjector((8, 8), (2.0, 2.0), n_angles=6, bin_mm=0.0)
    with pytest.raises(ValueError, match="n_subsets"):
        ParallelBeamProjector((8, 8), (1.0, 1.0), n_angles=6, bin_mm=1.0, n_subsets=7)
    proj = ParallelBeamProjector((8, 8), (1.0, 1.0), n_angles=6, bin_mm=1.0)
    with pytest.raises(ValueError, match="shape"):
        proj.forward(np.zeros((8, 9, 2), np.float32))
    with pytest.raises(ValueError, match="sinogram"):
        proj.back(np.zeros((5, proj.n_bins, 2), np.float32))


def test_threaded_products_match():
    x = np.random.default_rng(3).random((16, 16, 5)).astype(np.float32)
    one = ParallelBeamProjector((16, 16), (1.0, 1.0), n_angles=12, bin_mm=1.0)
    two = ParallelBeamProjector((16, 16), (1.0, 1.0), n_angles=12, bin_mm=1.0, workers=2)
    np.testing.assert_allclose(one.forward(x), two.forward(x), rtol=1e-6)
    y = one.forward(x)
    np.testing.assert_allclose(one.back(y), two.back(y), rtol=1e-6)
