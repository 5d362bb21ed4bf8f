"""PET phantom draws at scanner grids: shapes, seeds, ranges, every random factor varies, noise vs dose."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from volgan.data.synth import TISSUES, PetPhantomGenerator, TissueAnatomy, simulate_phantom

FOV = (72.0, 72.0, 48.0)


@pytest.fixture(scope="module")
def anatomy() -> TissueAnatomy:
    """A tiny spherical head on a 2 mm grid: white core, grey shell, CSF, skull, scalp."""
    n = 40
    grid = (np.arange(n) - (n - 1) / 2) * 2.0
    r = np.sqrt(grid[:, None, None] ** 2 + grid[None, :, None] ** 2 + grid[None, None, :] ** 2)
    shells = {"white_matter": (0, 14), "grey_matter": (14, 22), "csf": (22, 24), "skull": (24, 27),
              "scalp": (27, 30)}
    maps = np.zeros((len(TISSUES), n, n, n), np.float32)
    for name, (lo, hi) in shells.items():
        maps[TISSUES.index(name)] = np.clip(np.minimum(r - lo + 1.0, hi - r + 1.0) / 2.0, 0.0, 1.0)
    maps /= np.maximum(maps.sum(0), 1.0)
    return TissueAnatomy(maps=maps, template=maps.sum(0), spacing=(2.0, 2.0, 2.0), source="test spheres")


@pytest.fixture(scope="module")
def generator(anatomy) -> PetPhantomGenerator:
    return PetPhantomGenerator(anatomy, field_of_view_mm=FOV, subsets=4, centre_jitter_mm=3.0,
                               max_rotation_deg=10.0, deformation_mm=1.0)


@pytest.fixture(scope="module")
def osem_draw(generator):
    return generator.draw(11, simulator="osem")


def test_shapes_units_and_grid(osem_draw):
    d = osem_draw
    expected = tuple(int(round(f / s)) for f, s in zip(FOV, d.spacing))
    assert d.shape == expected
    for volume in (d.activity, d.truth, d.mu_per_cm, d.brain, d.lesions, *d.scans.values()):
        assert volume.shape == expected
    assert sorted(d.scans) == [0.05, 0.1, 0.25, 1.0] and d.simulator == "osem"
    assert all(v.dtype == np.float32 and v.min() >= 0 for v in (d.activity, d.truth, *d.scans.values()))
    np.testing.assert_allclose(np.diag(d.affine)[:3], d.spacing)
    assert d.activity.max() > 0 and d.brain.any()
    assert d.mu_per_cm.max() == pytest.approx(0.13, abs=0.03)  # skull; water elsewhere
    # the truth is the activity blurred by the system resolution: the same total, smoother
    assert d.truth.sum() == pytest.approx(d.activity.sum(), rel=0.05)
    assert np.abs(np.diff(d.truth, axis=0)).mean() < np.abs(np.diff(d.activity, axis=0)).mean()
    # the full-dose scan is close to the truth in the brain: same units
    assert d.scans[1.0][d.brain].mean() == pytest.approx(d.truth[d.brain].mean(), rel=0.15)


def test_seeded_and_reproducible(generator):
    a = generator.draw(5, simulator="image")
    b = generator.draw(np.random.default_rng(5), simulator="image")
    c = generator.draw(6, simulator=None)
    np.testing.assert_array_equal(a.activity, b.activity)
    np.testing.assert_array_equal(a.scans[0.1], b.scans[0.1])
    assert a.params() == b.params()
    assert a.shape != c.shape or not np.array_equal(a.activity, c.activity)


def test_every_random_factor_varies_within_its_range(generator):
    draws = [generator.draw(seed, simulator=None) for seed in range(12)]
    spacings = np.array([d.spacing for d in draws])
    assert spacings.min() >= 1.5 and spacings.max() <= 4.0
    assert np.ptp(spacings[:, 0]) > 1.0
    assert np.all(spacings[:, 0] == spacings[:, 1])
    assert any(d.spacing[2] != d.spacing[0] for d in draws) and any(d.spacing[2] == d.spacing[0] for d in draws)
    fwhm = np.array([d.fwhm_mm for d in draws])
    assert fwhm.min() >= 3.0 and fwhm.max() <= 6.0 and np.ptp(fwhm[:, 0]) > 1.0
    counts = np.array([d.total_counts for d in draws])
    assert counts.min() >= 3e7 and counts.max() <= 3e8 and counts.max() / counts.min() > 2
    n_lesions = [len(d.lesion_list) for d in draws]
    assert min(n_lesions) >= 0 and max(n_lesions) <= 5 and len(set(n_lesions)) >= 3
    lesions = [les for d in draws for les in d.lesion_list]
    diameters = [les.diameter_mm for les in lesions]
    contrasts = [les.contrast for les in lesions]
    assert min(diameters) >= 5 and max(diameters) <= 20 and np.ptp(diameters) > 5
    assert min(contrasts) >= 1.5 and max(contrasts) <= 6 and np.ptp(contrasts) > 1.5
    assert {les.tissue for les in lesions} == {"grey_matter", "white_matter"}
    ratios = [d.uptake["grey_matter"] / d.uptake["white_matter"] for d in draws]
    assert min(ratios) >= 2.5 and max(ratios) <= 4.5 and np.ptp(ratios) > 0.5
    assert len({d.iterations for d in draws}) > 1 and np.ptp([d.post_fwhm_mm for d in draws]) > 1
    assert len({d.noise_seed for d in draws}) == len(draws)


def test_lesions_are_labelled_hot_spheres_in_the_brain(anatomy, generator):
    # the same draws with lesions of contrast 1 (the same random stream): the activity without lesions
    flat = PetPhantomGenerator(anatomy, field_of_view_mm=FOV, subsets=4, centre_jitter_mm=3.0,
                               max_rotation_deg=10.0, deformation_mm=1.0, lesion_contrast=(1.0, 1.0))
    checked = 0
    for seed in range(12):
        d, plain = generator.draw(seed, simulator=None), flat.draw(seed, simulator=None)
        assert d.lesions.max() == len(d.lesion_list)
        assert np.array_equal(d.lesions, plain.lesions)
        ratio = np.divide(d.activity, plain.activity, out=np.ones_like(d.activity), where=plain.activity > 0)
        np.testing.assert_allclose(ratio[d.lesions == 0 & (plain.activity > 0)].min(), 1.0, atol=1e-4)
        for label, les in enumerate(d.lesion_list, start=1):
            assert d.lesions[les.centre] == label
            assert d.brain[les.centre]
            assert ratio[les.centre] == pytest.approx(les.contrast, rel=1e-4)
            assert ratio[d.lesions == label].min() >= 1 + (les.contrast - 1) * 0.5 - 1e-4
            checked += 1
    assert checked >= 5


def test_noise_falls_with_dose_in_both_simulators(osem_draw):
    doses = (1.0, 0.25, 0.1, 0.05)
    other_noise = replace(osem_draw, noise_seed=osem_draw.noise_seed + 1)
    for simulator in ("osem", "image"):
        a = osem_draw if simulator == "osem" else simulate_phantom(osem_draw, simulator, doses)
        b = simulate_phantom(other_noise, simulator, doses)
        # two noise realisations of one phantom: their difference is noise only
        sd = [float((a.scans[d] - b.scans[d])[a.brain].std()) / np.sqrt(2) for d in doses]
        assert sd == sorted(sd), (simulator, sd)
        assert sd[-1] / sd[0] == pytest.approx(np.sqrt(20), rel=0.3), (simulator, sd)
        assert a.simulator == simulator
        # the simulators share the phantom, counts and resolution: only the noise differs
        np.testing.assert_array_equal(a.truth, osem_draw.truth)


def test_bad_settings_raise(anatomy):
    with pytest.raises(ValueError, match="spacing_range"):
        PetPhantomGenerator(anatomy, spacing_range=(4.0, 1.5))
    with pytest.raises(ValueError, match="doses"):
        PetPhantomGenerator(anatomy, doses=(0.0,))
    with pytest.raises(ValueError, match="field_of_view_mm"):
        PetPhantomGenerator(anatomy, field_of_view_mm=(10.0, 10.0))
    with pytest.raises(ValueError, match="simulator"):
        simulate_phantom(PetPhantomGenerator(anatomy, field_of_view_mm=FOV).draw(0, simulator=None), "fbp")
