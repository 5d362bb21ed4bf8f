"""Low-dose PET simulation: counts, flat reconstruction, noise vs dose, seeding and input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from volgan.degrade import PetScanner, SimulateLowDosePetd, simulate_doses

SPACING = (2.0, 2.0, 3.0)


def cylinder(n: int = 48, nz: int = 6, radius_mm: float = 36.0, value: float = 10.0):
    """A uniform cylinder along axis 2, and a mask of its interior (1.5 cm inside the edge)."""
    grid = (np.arange(n) - (n - 1) / 2) * SPACING[0]
    r = np.hypot(grid[:, None], grid[None, :])
    activity = np.zeros((n, n, nz), np.float32)
    activity[r < radius_mm] = value
    interior = np.zeros_like(activity, dtype=bool)
    interior[r < radius_mm - 15.0, 1:-1] = True
    return activity, interior


@pytest.fixture(scope="module")
def high_count_recons():
    activity, interior = cylinder()
    recons = simulate_doses(activity, SPACING, doses=(1.0, 0.1), total_counts=3e8, iterations=6, subsets=4, seed=0)
    return activity, interior, recons


def test_geometry_defaults_follow_resolution_and_field_of_view():
    scanner = PetScanner((197, 233, 189), (1.0, 1.0, 1.0))
    assert scanner.radial_bin_mm == pytest.approx(2.25)  # fwhm 4.5 mm / 2
    radius = np.hypot(196, 232) / 2
    assert scanner.views == int(np.ceil(np.pi * radius / 2.25))
    assert PetScanner((10, 10, 2), (4.0, 3.0, 2.0)).radial_bin_mm == 3.0  # never finer than a pixel


def test_expected_and_sampled_counts_match_the_request():
    activity, _ = cylinder(nz=4)
    scanner = PetScanner(activity.shape, SPACING, scatter_fraction=0.3, randoms_fraction=0.2)
    data = scanner.acquire(activity, total_counts=1e6)
    trues, scatter = data.trues.sum(dtype=np.float64), data.scatter.sum(dtype=np.float64)
    randoms = data.randoms * data.trues.size
    assert trues + scatter + randoms == pytest.approx(1e6, rel=1e-5)
    assert scatter / (trues + scatter) == pytest.approx(0.3, rel=1e-5)
    assert randoms / 1e6 == pytest.approx(0.2, rel=1e-5)
    # trues are the attenuated line integrals times the scale: sum = scale * sum(att * A(blurred activity))
    projection = data.projector.forward(scanner.blur(activity))
    assert trues == pytest.approx(data.scale * (data.attenuation * projection).sum(dtype=np.float64), rel=1e-5)
    prompts = data.sample((1.0, 0.25), seed=1)
    for dose, counts in prompts.items():
        mean = 1e6 * dose
        assert abs(counts.sum(dtype=np.float64) - mean) < 4 * np.sqrt(mean)
        assert np.all(counts == np.round(counts)) and counts.min() >= 0
    independent = data.sample((0.25,), seed=1, thinning=False)[0.25]
    assert abs(independent.sum(dtype=np.float64) - 2.5e5) < 4 * np.sqrt(2.5e5)
    assert np.all(prompts[0.25] <= prompts[1.0])  # thinning keeps a subset of the full-dose counts


def test_attenuation_is_water_through_the_body():
    activity, _ = cylinder(nz=2, radius_mm=36.0)
    scanner = PetScanner(activity.shape, SPACING, fwhm_mm=0.0)
    data = scanner.acquire(activity, total_counts=1e5)
    centre = (data.projector.n_bins - 1) // 2
    chord_cm = 2 * 3.6  # through the middle of the cylinder
    np.testing.assert_allclose(data.attenuation[:, centre, :], np.exp(-0.096 * chord_cm), rtol=0.03)
    assert data.attenuation[:, 0, :].min() == pytest.approx(1.0)
    mu = np.where(activity > 0, 0.15, 0.0).astype(np.float32)  # user map, 1/cm
    bone = scanner.acquire(activity, total_counts=1e5, mu_map=mu)
    np.testing.assert_allclose(bone.attenuation[:, centre, :], np.exp(-0.15 * chord_cm), rtol=0.03)


def test_uniform_cylinder_reconstructs_flat_at_its_activity(high_count_recons):
    activity, interior, recons = high_count_recons
    values = recons[1.0][interior]
    assert values.mean() == pytest.approx(10.0, rel=0.03)
    assert values.std() / values.mean() < 0.05
    assert recons[1.0].dtype == np.float32 and recons[1.0].shape == activity.shape
    assert recons[0.1][interior].mean() == pytest.approx(10.0, rel=0.05)  # doses share the units


def test_noise_grows_like_one_over_sqrt_dose(high_count_recons):
    _, interior, recons = high_count_recons
    ratio = recons[0.1][interior].std() / recons[1.0][interior].std()
    assert ratio == pytest.approx(np.sqrt(10), rel=0.25)


def test_seeded_and_reproducible():
    activity, _ = cylinder(n=24, nz=3, radius_mm=16.0)
    kwargs = dict(total_counts=1e5, iterations=2, subsets=2)
    a = simulate_doses(activity, SPACING, doses=(1.0, 0.25), seed=3, **kwargs)
    b = simulate_doses(activity, SPACING, doses=(0.25,), seed=3, **kwargs)
    c = simulate_doses(activity, SPACING, doses=(0.25,), seed=4, **kwargs)
    np.testing.assert_array_equal(a[0.25], b[0.25])  # a dose's noise does not depend on the other doses
    assert not np.array_equal(b[0.25], c[0.25])


def test_resolution_modelling_recovers_a_hot_spot():
    n = 32
    grid = (np.arange(n) - (n - 1) / 2) * SPACING[0]
    r = np.hypot(grid[:, None], grid[None, :])
    activity = np.zeros((n, n, 3), np.float32)
    activity[r < 25] = 1.0
    activity[r < 4] = 8.0
    kwargs = dict(doses=(1.0,), total_counts=1e9, iterations=8, subsets=4, seed=0)
    plain = simulate_doses(activity, SPACING, **kwargs)[1.0]
    psf = simulate_doses(activity, SPACING, model_psf=True, **kwargs)[1.0]
    assert psf[r < 2].mean() > plain[r < 2].mean() * 1.05


def test_bad_inputs_raise_clear_errors():
    activity, _ = cylinder(n=16, nz=2, radius_mm=10.0)
    with pytest.raises(ValueError, match="3D"):
        simulate_doses(activity[..., 0], SPACING)
    with pytest.raises(ValueError, match="non-negative"):
        simulate_doses(activity - 1.0, SPACING)
    with pytest.raises(ValueError, match="mu_map has shape"):
        simulate_doses(activity, SPACING, mu_map=np.zeros((16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="1/mm"):
        simulate_doses(activity, SPACING, mu_map=np.full(activity.shape, 0.0096, np.float32))
    for dose in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            simulate_doses(activity, SPACING, doses=(dose,))
    with pytest.raises(ValueError, match="zero everywhere"):
        simulate_doses(np.zeros_like(activity), SPACING)
    with pytest.raises(ValueError, match="subsets"):
        simulate_doses(activity, SPACING, subsets=10_000)
    with pytest.raises(ValueError, match="differs"):
        simulate_doses(activity, (1.0, 1.0, 1.0), scanner=PetScanner(activity.shape, SPACING))


def test_dict_transform_reads_spacing_from_the_meta_tensor():
    activity, _ = cylinder(n=16, nz=2, radius_mm=10.0)
    source = MetaTensor(torch.from_numpy(activity)[None], affine=torch.diag(torch.tensor([*SPACING, 1.0])))
    t = SimulateLowDosePetd(dose=0.5, seed=1, total_counts=1e5, iterations=2, subsets=2)
    out = t({"label": source})
    assert out["image"].shape == source.shape and isinstance(out["image"], torch.Tensor)
    np.testing.assert_array_equal(out["image"].numpy(), t({"label": source})["image"].numpy())
    expected = simulate_doses(activity, SPACING, (0.5,), seed=1, total_counts=1e5, iterations=2, subsets=2)[0.5]
    np.testing.assert_allclose(out["image"][0].numpy(), expected)
