from __future__ import annotations

import numpy as np
import pytest

from volgan.metrics import mae, nrmse, psnr, ssim


def test_psnr_known_value():
    ref = np.zeros((4, 4, 4))
    pred = ref + 0.1
    assert psnr(pred, ref, data_range=1.0) == pytest.approx(20.0)
    assert psnr(ref, ref, data_range=1.0) == float("inf")


def test_mask_restricts_metrics():
    ref = np.zeros((4, 4, 4))
    pred = ref.copy()
    pred[0] = 1.0
    mask = np.zeros_like(ref, bool)
    mask[1:] = True
    assert psnr(pred, ref, data_range=1.0, mask=mask) == float("inf")
    assert mae(pred, ref, mask=mask) == 0.0
    assert mae(pred, ref) == pytest.approx(0.25)


def test_ssim_identity_and_degradation():
    rng = np.random.default_rng(0)
    ref = rng.random((16, 16, 16))
    assert ssim(ref, ref, data_range=1.0) == pytest.approx(1.0)
    noisy = ref + rng.normal(0, 0.2, ref.shape)
    worse = ref + rng.normal(0, 0.4, ref.shape)
    assert ssim(worse, ref, data_range=1.0) < ssim(noisy, ref, data_range=1.0) < 1.0


def test_nrmse_and_validation():
    ref = np.ones((3, 3, 3))
    assert nrmse(ref * 1.1, ref) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="data_range"):
        psnr(ref, ref, data_range=0)
    with pytest.raises(ValueError, match="shape"):
        psnr(ref, np.ones((2, 2, 2)), data_range=1)
    with pytest.raises(ValueError, match="empty"):
        ssim(ref, ref, data_range=1, mask=np.zeros_like(ref, bool))


def test_relative_sharpness_is_one_for_the_reference_and_below_one_when_blurred():
    from scipy import ndimage

    from volgan.metrics import relative_sharpness

    rng = np.random.default_rng(1)
    ref = ndimage.gaussian_filter(rng.normal(size=(20, 20, 20)), 1.0)
    mask = np.zeros(ref.shape, bool)
    mask[4:16, 4:16, 4:16] = True
    assert relative_sharpness(ref, ref, mask=mask) == pytest.approx(1.0)
    assert relative_sharpness(ndimage.gaussian_filter(ref, 1.5), ref, mask=mask) < 0.7
    assert relative_sharpness(ref + rng.normal(scale=0.2, size=ref.shape), ref) > 1.2
