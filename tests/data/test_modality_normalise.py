"""Invertible CT / PET / MR normalisers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from volgan.data import HuWindow, Normalised, PercentileScaler, SuvScaler, normaliser_for


def test_hu_window_clips_scales_and_inverts_inside_the_window():
    hu = np.array([-3000.0, -1000.0, 0.0, 40.0, 2000.0, 3500.0])
    params = HuWindow(-1000, 2000).fit(hu)
    y = params.apply(hu)
    np.testing.assert_allclose(y, [0, 0, 1 / 3, 1040 / 3000, 1, 1])
    np.testing.assert_allclose(params.invert(y), [-1000, -1000, 0, 40, 2000, 2000])
    assert torch.equal(params.apply(torch.tensor([5000.0])), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="upper > lower"):
        HuWindow(100, 100)


def test_suv_scale_from_activity_weight_and_dose_and_back():
    weight_kg, dose = 70.0, 350e6
    activity = np.array([0.0, 5000.0, 20000.0])  # Bq/ml
    params = SuvScaler(weight_kg, dose, suv_max=10).fit(activity)
    suv = activity * weight_kg * 1000 / dose
    np.testing.assert_allclose(params.apply(activity), suv / 10)
    np.testing.assert_allclose(params.invert(params.apply(activity)), activity)
    np.testing.assert_allclose(SuvScaler(suv_max=5).fit(suv).apply(suv), suv / 5)
    with pytest.raises(ValueError, match="both the body weight and the injected dose"):
        SuvScaler(weight_kg=70)
    with pytest.raises(ValueError, match="must be positive"):
        SuvScaler(70, -1.0)


def test_normalised_keeps_the_parameters_that_invert_each_key():
    rng = np.random.default_rng(0)
    data = {"source": rng.gamma(2.0, 50.0, (1, 8, 8, 8)), "target": rng.gamma(2.0, 80.0, (1, 8, 8, 8))}
    out = Normalised(["source", "target"], normaliser_for("MR", upper=99.0))(data)
    for key in ("source", "target"):
        offset, scale = out[f"{key}_scale"]
        assert scale == pytest.approx(np.percentile(data[key], 99.0))
        np.testing.assert_allclose(out[key] * scale + offset, data[key])
    assert isinstance(normaliser_for("ct"), HuWindow) and isinstance(normaliser_for("PT"), SuvScaler)
    assert isinstance(normaliser_for("MR"), PercentileScaler)
    with pytest.raises(ValueError, match="no normaliser for modality 'US'"):
        normaliser_for("US")


def test_suv_scale_from_units_per_suv_and_its_checks():
    activity = np.array([0.0, 5000.0, 20000.0])  # Bq/ml, 5 kBq/ml per SUV
    params = SuvScaler(suv_max=10, units_per_suv=5000.0).fit(activity)
    np.testing.assert_allclose(params.apply(activity), [0.0, 0.1, 0.4])
    with pytest.raises(ValueError, match="not both"):
        SuvScaler(70, 350e6, units_per_suv=5000.0)
    with pytest.raises(ValueError, match="units_per_suv must be positive"):
        SuvScaler(units_per_suv=0.0)
