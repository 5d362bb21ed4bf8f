"""Domain-randomised MR subjects: shapes, seeds, ranges, and that every random factor varies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from volgan.data.synth import (
    TISSUES,
    SynthDenoisingDataset,
    SynthMRGenerator,
    TissueAnatomy,
    draw_contrast,
    draw_spatial,
    sampling_coordinates,
)


def sphere_anatomy(n: int = 40) -> TissueAnatomy:
    """Nested soft shells: WM core, GM, CSF, skull, scalp (a tiny stand-in for the MNI maps)."""
    r = np.linalg.norm(np.indices((n, n, n)) - (n - 1) / 2, axis=0)
    shells = [(0, 6), (6, 9), (9, 11), (11, 13), (13, 15)]  # wm, gm, csf, skull, scalp radii
    soft = [np.clip(np.minimum(r - a + 0.5, b - r + 0.5), 0, 1) for a, b in shells]
    wm, gm, csf, skull, scalp = soft
    maps = np.stack([gm, wm, csf, scalp, skull]).astype(np.float32)
    maps /= np.maximum(maps.sum(0, keepdims=True), 1.0)
    template = (0.85 * wm + 0.55 * gm + 0.15 * csf + 0.9 * scalp + 0.2 * skull).astype(np.float32)
    return TissueAnatomy(maps, template, (1.0, 1.0, 1.0), "test spheres")


@pytest.fixture(scope="module")
def anatomy() -> TissueAnatomy:
    return sphere_anatomy()


def test_draws_are_reproducible_and_differ_between_seeds(anatomy):
    gen = SynthMRGenerator(anatomy, shape=(16, 18, 20))
    a, b = gen.draw(np.random.default_rng(3)), gen.draw(np.random.default_rng(3))
    c = gen.draw(np.random.default_rng(4))
    assert a.image.shape == (16, 18, 20) and a.image.dtype == np.float32
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)


def test_intensities_are_finite_non_negative_and_about_unit_scale(anatomy):
    gen = SynthMRGenerator(anatomy, shape=(24, 24, 24), centre_on_head=1.0)
    peaks = []
    for seed in range(12):
        image = gen.draw(np.random.default_rng(seed)).image
        assert np.isfinite(image).all() and image.min() >= 0
        peaks.append(float(np.percentile(image, 99.5)))
    assert 0.2 < np.median(peaks) < 2.0


def test_every_random_factor_varies_across_draws(anatomy):
    gen = SynthMRGenerator(anatomy, shape=(12, 12, 12))
    subjects = [gen.draw(np.random.default_rng(s)) for s in range(40)]
    kinds = {s.contrast.kind for s in subjects}
    assert kinds == {"t1", "t2", "pd", "random", "template"}
    assert np.ptp([s.spatial.spacing[0] for s in subjects]) > 0.3
    assert any(len(set(s.spacing)) > 1 for s in subjects)  # some thick-slice draws
    assert np.ptp([s.params["bias_sd"] for s in subjects]) > 0.1
    assert np.ptp([s.params["psf_sigma_voxels"][0] for s in subjects]) > 0.2
    assert np.ptp([s.params["texture_scale"] for s in subjects]) > 0.5
    rotations = [np.linalg.svd(s.spatial.matrix)[1] for s in subjects]
    assert np.ptp([r.max() for r in rotations]) > 0.05  # scales differ
    assert np.ptp([s.spatial.centre[0] for s in subjects]) > 5  # head position / field of view
    assert np.ptp([np.abs(s.spatial.displacement).max() for s in subjects]) > 0.5


def test_contrast_presets_order_tissues_as_their_weighting():
    rng = np.random.default_rng(0)
    seen = {}
    while len(seen) < 3:
        c = draw_contrast(rng, template_probability=0, random_probability=0, jitter=0.05)
        seen[c.kind] = dict(zip(TISSUES, c.means))
    assert seen["t1"]["white_matter"] > seen["t1"]["grey_matter"] > seen["t1"]["csf"]
    assert seen["t2"]["csf"] > seen["t2"]["grey_matter"] > seen["t2"]["white_matter"]


def test_identity_geometry_samples_the_anatomy_at_its_own_voxels():
    rng = np.random.default_rng(0)
    draw = draw_spatial(rng, np.array([10.0, 11.0, 12.0]), max_rotation_deg=0, max_scale=0, max_shear=0,
                        deformation_mm=0, spacing_range=(1.0, 1.0), thick_slice_probability=0)
    coords = sampling_coordinates(draw, (5, 5, 5))
    np.testing.assert_allclose(coords[:, 2, 2, 2], [10, 11, 12], atol=1e-5)
    np.testing.assert_allclose(coords[0, 3, 2, 2] - coords[0, 2, 2, 2], 1.0, atol=1e-5)


def test_a_voxel_size_of_two_mm_steps_two_anatomy_voxels():
    draw = draw_spatial(np.random.default_rng(0), np.zeros(3), max_rotation_deg=0, max_scale=0, max_shear=0,
                        deformation_mm=0, spacing_range=(2.0, 2.0), thick_slice_probability=0)
    coords = sampling_coordinates(draw, (4, 4, 4))
    np.testing.assert_allclose(np.diff(coords[1, 0, :, 0]), 2.0, atol=1e-5)


def test_denoising_pairs_share_the_draw_and_carry_rician_noise(anatomy):
    data = SynthDenoisingDataset(SynthMRGenerator(anatomy, shape=(16, 16, 16), centre_on_head=1.0), length=4,
                                 seed=5, levels=(10.0, 10.0), scale_jitter=0.0)
    item = data[0]
    assert item["image"].shape == item["label"].shape == (1, 16, 16, 16)
    assert float(item["level"]) == pytest.approx(10.0)
    residual = (item["image"] - item["label"])[item["label"] > 0.3]
    assert 0.05 < float(residual.std()) < 0.15  # sigma 0.1, a bit less where Rician bias is small
    torch.testing.assert_close(data[0]["image"], item["image"])
    data.epoch = 1
    assert not torch.equal(data[0]["label"], item["label"])


def test_dataset_rejects_bad_levels_and_indices(anatomy):
    gen = SynthMRGenerator(anatomy, shape=(8, 8, 8))
    with pytest.raises(ValueError, match="levels"):
        SynthDenoisingDataset(gen, levels=(5.0, 1.0))
    with pytest.raises(IndexError):
        SynthDenoisingDataset(gen, length=2)[2]


def test_anatomy_round_trips_and_bad_files_are_named(tmp_path, anatomy):
    path = tmp_path / "anatomy.npz"
    anatomy.save(path)
    loaded = TissueAnatomy.load(path)
    np.testing.assert_allclose(loaded.maps, anatomy.maps, atol=1e-3)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="bad.npz"):
        TissueAnatomy.load(bad)
    with pytest.raises(ValueError, match="maps must be"):
        TissueAnatomy(anatomy.maps[:2], anatomy.template)
