"""Image-domain PET noise: matched to the OSEM path's noise level, falls with dose, seeded, input errors."""

from __future__ import annotations

import numpy as np
import pytest

from volgan.degrade import gaussian_blur_mm, image_noise_doses, simulate_doses
from volgan.degrade.pet import PetScanner


def cylinder(spacing: tuple[float, float, float], radius_mm: float = 70.0, fov_mm: float = 180.0, nz: int = 4):
    """A uniform water cylinder (activity 1) along axis 2 and its interior (25 mm inside the edge)."""
    n = int(round(fov_mm / spacing[0]))
    grid = (np.arange(n) - (n - 1) / 2) * spacing[0]
    r = np.hypot(grid[:, None], grid[None, :])
    activity = np.zeros((n, n, nz), np.float32)
    activity[r < radius_mm] = 1.0
    interior = np.zeros(activity.shape, bool)
    interior[r < radius_mm - 25.0, 1:-1] = True
    return activity, interior


def cv(image: np.ndarray, mask: np.ndarray) -> float:
    return float(image[mask].std() / image[mask].mean())


@pytest.mark.parametrize(
    "spacing, fwhm, iterations, post",
    [((2.0, 2.0, 2.5), 5.0, 3, None), ((3.0, 3.0, 2.0), 3.5, 4, 2.5)],
)
def test_noise_level_matches_the_osem_path_within_20_percent(spacing, fwhm, iterations, post):
    activity, interior = cylinder(spacing)
    scanner = PetScanner(activity.shape, spacing, fwhm_mm=fwhm)
    counts = 1.5e6 * activity.shape[2]
    doses = (1.0, 0.1)
    osem = simulate_doses(activity, spacing, doses, total_counts=counts, iterations=iterations, subsets=12,
                          post_fwhm_mm=post, scanner=scanner, seed=5)
    truth = gaussian_blur_mm(activity, fwhm, spacing)
    image = image_noise_doses(truth, spacing, doses, total_counts=counts, fwhm_mm=fwhm, iterations=iterations,
                              subsets=12, post_fwhm_mm=post, seed=5)
    for dose in doses:
        assert cv(image[dose], interior) == pytest.approx(cv(osem[dose], interior), rel=0.2)
        # both are in the activity's units: a uniform region keeps its value
        assert image[dose][interior].mean() == pytest.approx(1.0, rel=0.05)


def test_noise_falls_with_dose_and_grows_with_activity():
    spacing = (2.0, 2.0, 2.0)
    activity, interior = cylinder(spacing, radius_mm=50.0, fov_mm=128.0, nz=6)
    truth = gaussian_blur_mm(activity, 4.0, spacing)
    scans = image_noise_doses(truth, spacing, (1.0, 0.25, 0.05), total_counts=3e7, fwhm_mm=4.0, seed=0)
    sd = {d: float((scans[d] - truth)[interior].std()) for d in scans}
    assert sd[1.0] < sd[0.25] < sd[0.05]
    assert sd[0.25] / sd[1.0] == pytest.approx(2.0, rel=0.15)
    assert sd[0.05] / sd[1.0] == pytest.approx(np.sqrt(20), rel=0.15)
    hot = image_noise_doses(truth * 4, spacing, (0.25,), total_counts=3e7, fwhm_mm=4.0, seed=0)[0.25]
    # four times the activity with the same counts: the same relative noise
    assert float((hot - 4 * truth)[interior].std()) == pytest.approx(4 * sd[0.25], rel=0.05)


def test_seeded_per_dose():
    spacing = (3.0, 3.0, 3.0)
    activity, _ = cylinder(spacing, radius_mm=30.0, fov_mm=90.0, nz=3)
    kwargs = dict(total_counts=1e5, fwhm_mm=4.0)
    a = image_noise_doses(activity, spacing, (1.0, 0.25), seed=3, **kwargs)
    b = image_noise_doses(activity, spacing, (0.25,), seed=3, **kwargs)
    c = image_noise_doses(activity, spacing, (0.25,), seed=4, **kwargs)
    np.testing.assert_array_equal(a[0.25], b[0.25])
    assert not np.array_equal(b[0.25], c[0.25])
    assert all(v.dtype == np.float32 and v.shape == activity.shape and v.min() >= 0 for v in a.values())


def test_bad_inputs_raise_clear_errors():
    spacing = (3.0, 3.0, 3.0)
    activity, _ = cylinder(spacing, radius_mm=20.0, fov_mm=60.0, nz=2)
    with pytest.raises(ValueError, match="3D"):
        image_noise_doses(activity[..., 0], spacing)
    with pytest.raises(ValueError, match="non-negative"):
        image_noise_doses(activity - 1, spacing)
    with pytest.raises(ValueError, match="zero everywhere"):
        image_noise_doses(np.zeros_like(activity), spacing)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        image_noise_doses(activity, spacing, (1.5,))
    with pytest.raises(ValueError, match="mu_per_cm has shape"):
        image_noise_doses(activity, spacing, mu_per_cm=np.zeros((2, 2, 2), np.float32))
