"""Synthetic super-resolution pairs: the acquisitions they simulate, shapes, seeds and variety."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.data.test_synth import sphere_anatomy
from volgan.data.synth import SynthMRGenerator
from volgan.data.synth.sr_dataset import SynthSRDataset, slice_profile, thick_slice_acquisition


@pytest.mark.parametrize("kind", ["box", "gaussian"])
@pytest.mark.parametrize("width", [3.0, 4.0, 5.5])
def test_slice_profiles_are_normalised_symmetric_and_as_wide_as_asked(kind, width):
    w = slice_profile(width, kind)
    assert w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w[::-1])
    x = np.arange(len(w)) - (len(w) - 1) / 2
    spread = np.sqrt((w * x**2).sum())
    # a box of width W has standard deviation W / sqrt(12); a Gaussian of FWHM W, W / 2.355
    expected = width / np.sqrt(12) if kind == "box" else width / 2.3548
    assert spread == pytest.approx(expected, rel=0.25)


def test_a_linear_ramp_survives_thick_slices_and_other_axes_are_untouched():
    ramp = np.broadcast_to(np.arange(80, dtype=np.float32)[None, None, :], (6, 7, 80)).copy()
    ramp += np.arange(6, dtype=np.float32)[:, None, None] * 10  # detail along axis 0 only
    out = thick_slice_acquisition(ramp, axis=2, spacing=4, width=4.0, profile="box", offset=0)
    assert out.shape == (6, 7, 80)
    # slab means of a ramp sit on the ramp; the cubic B-spline reproduces it away from the edges
    # (its prefilter carries the edge's error a few slabs in)
    np.testing.assert_allclose(out[..., 16:-16], ramp[..., 16:-16], atol=0.01)


def test_detail_finer_than_the_slices_is_lost_along_the_slice_axis_only():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(24, 24, 24)).astype(np.float32)
    out = thick_slice_acquisition(noise, axis=1, spacing=4, width=4.0, profile="box", offset=2)
    assert out.shape == (24, 20, 24)  # slabs cover thin slices 2..21
    kept = noise[:, 2:22, :]
    # along axis 1 the output is smooth (slab means interpolated), so its variance collapses
    assert out.var() < 0.35 * kept.var()
    # what the slabs do see is kept: the output follows each slab's mean (detail along the other axes)
    slab_means = np.repeat(kept.reshape(24, 5, 4, 24).mean(2), 4, axis=1)
    assert np.corrcoef(out.ravel(), slab_means.ravel())[0, 1] > 0.8


def test_a_bad_profile_or_slab_is_refused():
    with pytest.raises(ValueError, match="profile"):
        slice_profile(3.0, "triangle")
    with pytest.raises(ValueError, match="positive"):
        slice_profile(0.0, "box")
    with pytest.raises(ValueError, match="no slab"):
        thick_slice_acquisition(np.zeros((4, 4, 5)), axis=2, spacing=6, width=6.0, profile="box", offset=0)


@pytest.fixture(scope="module")
def generator():
    return SynthMRGenerator(sphere_anatomy(), shape=(26, 26, 26), centre_on_head=1.0, thick_slice_probability=0.0)


def test_pairs_are_patches_reproducible_per_seed_and_fresh_per_epoch(generator):
    data = SynthSRDataset(generator, (16, 16, 16), length=6, seed=3)
    item = data[0]
    assert item["image"].shape == item["label"].shape == (1, 16, 16, 16)
    assert item["image"].dtype == item["label"].dtype == torch.float32
    torch.testing.assert_close(data[0]["image"], item["image"])
    assert not torch.equal(SynthSRDataset(generator, (16, 16, 16), length=6, seed=4)[0]["label"], item["label"])
    data.epoch = 1
    assert not torch.equal(data[0]["label"], item["label"])


def high_band_power(a: np.ndarray, axis: int) -> float:
    spectrum = np.abs(np.fft.fft(a - a.mean(), axis=axis)) ** 2
    k = np.abs(np.fft.fftfreq(a.shape[axis]))
    return float(np.take(spectrum, np.flatnonzero(k > 1 / 3), axis=axis).sum())


def test_both_acquisitions_are_drawn_and_each_removes_detail(generator):
    data = SynthSRDataset(generator, (16, 16, 16), length=1, seed=0)
    kinds = {}
    for i in range(12):
        rng = np.random.default_rng(i)
        clean = generator.draw(rng).image
        degraded, cut, acquisition = data.degrade(clean, rng)
        assert degraded.shape == cut.shape
        kinds.setdefault(acquisition["kind"], []).append(acquisition)
        # the degraded axes lose their fine detail: little power in the outer third of their spectrum
        for axis in acquisition.get("axes", (acquisition.get("axis"),)):
            assert high_band_power(degraded, axis) < 0.8 * high_band_power(cut, axis)
    assert set(kinds) == {"thick", "kspace"}
    assert len({a["axis"] for a in kinds["thick"]} | {a["spacing"] for a in kinds["thick"]}) > 2
    assert all(1.5 <= f <= 3.0 for a in kinds["kspace"] for f in a["factors"])


def test_bad_settings_are_refused(generator):
    with pytest.raises(ValueError, match="exceed patch_size"):
        SynthSRDataset(generator, (20, 20, 20), thick_range=(2, 6))
    with pytest.raises(ValueError, match="thick_range"):
        SynthSRDataset(generator, (16, 16, 16), thick_range=(1, 4))
    with pytest.raises(ValueError, match="kspace_factor_range"):
        SynthSRDataset(generator, (16, 16, 16), kspace_factor_range=(1.0, 2.0))
    with pytest.raises(IndexError):
        SynthSRDataset(generator, (16, 16, 16), length=2)[2]


def test_the_acquisition_axes_can_be_fixed(generator):
    data = SynthSRDataset(generator, (16, 16, 16), length=1, thick_axes=(2,), kspace_axes=(0, 1))
    seen = set()
    for i in range(10):
        rng = np.random.default_rng(i)
        _, _, acquisition = data.degrade(generator.draw(rng).image, rng)
        seen.add(acquisition.get("axis", acquisition.get("axes")))
    assert seen == {2, (0, 1)}
    with pytest.raises(ValueError, match="thick_axes"):
        SynthSRDataset(generator, (16, 16, 16), thick_axes=(3,))
    with pytest.raises(ValueError, match="kspace_axes"):
        SynthSRDataset(generator, (16, 16, 16), kspace_axes=(1, 1))
