from __future__ import annotations

import numpy as np
import pytest

from volgan.data.normalise import PercentileScaler, high_percentile


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("q", [90.0, 99.0, 99.5, 99.97, 100.0])
@pytest.mark.parametrize("kind", ["gamma", "ties", "mostly-zero"])
def test_high_percentile_equals_numpy(dtype, q, kind):
    rng = np.random.default_rng(int(q * 100))
    shape = (40, 50, 60)
    if kind == "gamma":
        x = rng.gamma(2.0, 10.0, shape)
    elif kind == "ties":  # many equal values around the answer
        x = rng.integers(0, 20, shape).astype(float)
    else:  # a head in a mostly empty field of view
        x = np.where(rng.random(shape) < 0.97, 0.0, rng.random(shape) * 100)
    x = x.astype(dtype)
    assert high_percentile(x, q) == float(np.percentile(x, q))


@pytest.mark.parametrize("array", [np.arange(10.0), np.full(500_000, 3.0, np.float32), np.arange(300_000, dtype=np.int32)])
def test_high_percentile_small_constant_and_integer_inputs(array):
    assert high_percentile(array, 99.5) == float(np.percentile(array, 99.5))


def test_nan_falls_back_to_numpy():
    x = np.random.default_rng(0).random(400_000).astype(np.float32)
    x[123] = np.nan
    assert np.isnan(high_percentile(x, 99.5)) and np.isnan(np.percentile(x, 99.5))
    with pytest.raises(ValueError, match="NaN or infinite"):
        PercentileScaler().fit(x)
