from __future__ import annotations

import numpy as np
import pytest
import torch

from volgan.degrade import RandRicianNoised, RicianNoised, add_rician_noise, rician_sigma


def test_background_follows_rayleigh_and_bright_areas_gaussian():
    clean = np.zeros((64, 64, 32), np.float32)
    clean[:, :32] = 1000.0
    noisy = add_rician_noise(clean, 5.0, seed=1)
    sigma = 50.0
    assert rician_sigma(clean, 5.0) == pytest.approx(sigma)
    background = noisy[:, 32:]
    # Rayleigh: mean sigma*sqrt(pi/2)
    assert background.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.02)
    bright = noisy[:, :32]
    assert bright.std() == pytest.approx(sigma, rel=0.03)
    assert bright.mean() == pytest.approx(1000.0 + sigma**2 / 2000.0, rel=0.002)


def test_seeded_and_non_negative():
    clean = np.random.default_rng(0).random((8, 8, 8)).astype(np.float32)
    a = add_rician_noise(clean, 3.0, seed=42)
    b = add_rician_noise(clean, 3.0, seed=42)
    c = add_rician_noise(clean, 3.0, seed=43)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.dtype == np.float32


def test_peak_overrides_patch_maximum():
    patch = np.full((16, 16, 16), 0.2, np.float32)
    noisy = add_rician_noise(patch, 10.0, seed=0, peak=1.0)
    assert noisy.std() == pytest.approx(0.1, rel=0.1)


def test_level_must_be_a_percentage():
    with pytest.raises(ValueError, match="percentage"):
        add_rician_noise(np.ones((2, 2, 2)), 150.0)


def test_dict_transforms():
    clean = torch.ones(1, 8, 8, 8) * 100
    t = RandRicianNoised(levels=(5, 5))
    t.set_random_state(0)
    out = t({"label": clean})
    assert out["image"].shape == clean.shape
    assert float((out["image"] - clean).std()) == pytest.approx(5.0, rel=0.2)
    fixed = RicianNoised(level=5, seed=3)
    np.testing.assert_array_equal(fixed({"label": clean})["image"], fixed({"label": clean})["image"])
