"""K-space truncation against analytic cases."""

from __future__ import annotations

import numpy as np
import pytest

from volgan.degrade import central_band, truncate_kspace, truncate_kspace_volume
from volgan.io import Volume


def cosine_volume(shape, freqs):
    """2 + sum of cosines with integer frequencies ``freqs`` (cycles per field of view) per axis."""
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    vol = np.full(shape, 2.0)
    for axis, f in enumerate(freqs):
        if f == 0:
            continue
        vol += 0.5 * np.cos(2 * np.pi * f * grids[axis] / shape[axis] + 0.3 * axis)
    return vol


def test_central_band_keeps_the_lowest_frequencies():
    keep = central_band(16, 0.5)
    k = np.round(np.fft.fftfreq(16) * 16).astype(int)
    assert keep.sum() == 8 and sorted(k[keep]) == list(range(-4, 4))
    assert central_band(15, 1.0).all()


def test_band_limited_volume_survives_unchanged():
    vol = cosine_volume((32, 24, 20), freqs=(3, 5, 9))  # |f| < 6 along axes 0, 1: inside half of k-space
    out = truncate_kspace(vol, 0.5, axes=(0, 1))
    np.testing.assert_allclose(out, vol, atol=1e-5)


def test_frequencies_outside_the_band_are_removed():
    shape = (32, 24, 20)
    low = cosine_volume(shape, freqs=(2, 0, 0))
    high = cosine_volume(shape, freqs=(12, 0, 0)) - 2.0  # 0.5 cos(2 pi 12 x / 32): outside |f| < 8
    out = truncate_kspace(low + high, 0.5, axes=(0, 1))
    np.testing.assert_allclose(out, low, atol=1e-5)
    # along an axis that is not truncated, the same frequency survives
    high_z = cosine_volume((32, 24, 32), freqs=(0, 0, 12)) - 2.0
    low_z = cosine_volume((32, 24, 32), freqs=(2, 0, 0))
    np.testing.assert_allclose(truncate_kspace(low_z + high_z, 0.5, axes=(0, 1)), low_z + high_z, atol=1e-5)


def test_truncation_blurs_an_edge_and_keeps_the_grid():
    vol = np.zeros((32, 32, 16), np.float32)
    vol[8:24, 8:24, 4:12] = 100.0
    out = truncate_kspace(vol, 0.5, axes=(0, 1))
    assert out.shape == vol.shape and out.dtype == np.float32
    assert out.min() >= 0 and 0 < out[7, 16, 8] < 100  # magnitude, edge spread
    volume = Volume(vol, np.diag([0.7, 0.8, 2.0, 1.0]))
    result = truncate_kspace_volume(volume, 0.5, axes=(0, 1))
    np.testing.assert_array_equal(result.affine, volume.affine)
    np.testing.assert_allclose(result.array, out)


def test_deterministic_and_validated():
    vol = np.random.default_rng(0).random((8, 8, 8))
    np.testing.assert_array_equal(truncate_kspace(vol, 0.5), truncate_kspace(vol, 0.5))
    with pytest.raises(ValueError, match="fraction"):
        truncate_kspace(vol, 0.0)
    with pytest.raises(ValueError, match="distinct"):
        truncate_kspace(vol, 0.5, axes=(0, 0))
    with pytest.raises(ValueError, match="3D"):
        truncate_kspace(vol[0], 0.5)
