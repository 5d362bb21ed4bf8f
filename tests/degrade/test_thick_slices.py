"""Thick slices: averaging, mean preservation and the affine of each thick slice."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import oblique_affine
from volgan.degrade import average_slices, thick_slice_affine, thick_slices
from volgan.io import Volume


def test_average_of_consecutive_slices():
    a = np.arange(2 * 3 * 8, dtype=np.float32).reshape(2, 3, 8)
    thick = average_slices(a, 4, axis=2)
    assert thick.shape == (2, 3, 2)
    np.testing.assert_allclose(thick[..., 0], a[..., :4].mean(-1))
    np.testing.assert_allclose(thick[..., 1], a[..., 4:].mean(-1))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_mean_is_preserved(axis):
    a = np.random.default_rng(axis).random((12, 8, 16)).astype(np.float32)
    thick = average_slices(a, 4, axis=axis)
    assert thick.shape[axis] == a.shape[axis] // 4
    assert thick.mean() == pytest.approx(a.mean(), rel=1e-6)


def test_remainder_and_offset_are_dropped():
    a = np.arange(10, dtype=np.float32)[None, None, :].repeat(2, 0).repeat(2, 1)
    np.testing.assert_allclose(average_slices(a, 4, axis=2)[0, 0], [1.5, 5.5])
    np.testing.assert_allclose(average_slices(a, 4, axis=2, offset=1)[0, 0], [2.5, 6.5])


@pytest.mark.parametrize("axis, offset", [(2, 0), (0, 1), (1, 2)])
def test_affine_places_each_thick_centre_at_the_mean_of_its_thin_centres(axis, offset):
    affine = oblique_affine()
    shape = (13, 11, 9)
    vol = thick_slices(Volume(np.zeros(shape, np.float32), affine), 3, axis=axis, offset=offset)
    for i in range(vol.shape[axis]):
        thin = np.zeros((3, 4))
        thin[:, 3] = 1
        thin[:, axis] = offset + 3 * i + np.arange(3)
        expected = (affine @ thin.T).T[:, :3].mean(0)
        index = np.array([0.0, 0.0, 0.0, 1.0])
        index[axis] = i
        np.testing.assert_allclose((vol.affine @ index)[:3], expected, atol=1e-9)
    spacing = np.array(Volume(np.zeros(shape), affine).spacing)
    spacing[axis] *= 3
    np.testing.assert_allclose(vol.spacing, spacing)
    np.testing.assert_allclose(thick_slice_affine(affine, 3, axis, offset), vol.affine)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="n must be"):
        average_slices(np.zeros((4, 4, 4)), 0)
    with pytest.raises(ValueError, match="fewer than"):
        average_slices(np.zeros((4, 4, 3)), 4, axis=2)
