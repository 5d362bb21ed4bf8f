"""Low-dose PET in the image domain: the truth plus tomographic noise at the level the counts give.

A second simulation path, independent of the projector, Poisson sinograms and OSEM of
:mod:`volgan.degrade.pet`, for checking that results do not hinge on one simulator. Per axial slice
(array axes 0, 1; axis 2 is the scanner axis, slices are independent as in multi-slice 2D PET):

1. the slice's body is replaced by a disk of the same area about its centroid, filled with the
   body's mean attenuation ``mu``; for every voxel at radius ``rho`` the chords through it over
   ``n_angles`` directions are ``L = 2 sqrt(R^2 - rho^2 sin^2 phi)``;
2. counts: the noise-equivalent counts of the full dose are ``total_counts * (1 - randoms) ** 2 *
   (1 - scatter) ** 2`` (trues squared over prompts); a voxel's trues are its activity times its
   mean attenuation factor ``mean exp(-mu L)``, so the counts per unit of activity x area are
   ``q = NEC * dose / sum(activity * exp-factor * pixel area)`` over the volume;
3. the variance of an attenuation-corrected line integral through a voxel is its value over ``q``
   times ``exp(mu L)``; averaged over the chords (activity ``a_mean L`` along each) it gives the
   local variance scale ``V(v) = mean(a_mean L exp(mu L)) / q``, times the activity ratio
   ``a(v) / a_mean`` (Poisson-like: variance grows with the activity);
4. the noise texture is white noise shaped in each slice by a noise power spectrum
   ``|k| ** POWER * exp(-(k / k_c) ** 2)`` with ``k_c = KAPPA * (iterations x subsets) ** GAMMA / bin``
   (the resolution an unconverged OSEM reaches with radial bins of ``bin`` mm); its variance is
   ``GAIN * V(v) * integral of the spectrum``. Filtered back-projection has the ramp (``POWER = 1``);
   OSEM's noise depends less on the resolution (EM noise is blobbier), which ``POWER = 0.5`` follows;
5. the image is the truth plus this noise, clipped at 0 (reconstructions are non-negative), then
   smoothed by the post-filter.

``GAIN``, ``POWER``, ``KAPPA`` and ``GAMMA`` are the model's only constants, fitted once to the OSEM
path's noise (coefficient of variation in the interior of water cylinders, 60-90 mm radius) over
eleven set-ups: voxels 1.5-4 mm (axial 2-4 mm), resolution 3-6 mm, 2-4 iterations, post-filters
0-4 mm; the image-domain noise is within 20 % of the OSEM noise in all of them (4 mm voxels are at
the low end, 1.5-2 mm within 15 %). tests/degrade/test_pet_image_noise.py checks the match on set-ups
and doses of its own.

Examples::

    >>> from volgan.degrade.pet_image_noise import image_noise_doses
    >>> scans = image_noise_doses(truth, (2.0, 2.0, 2.0), (1.0, 0.1), total_counts=1e8, mu_per_cm=mu)
    >>> scans[0.1].shape == truth.shape
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from volgan.degrade.pet import _check_dose, _triple, gaussian_blur_mm

GAIN = 0.163
"""Scale of the variance (absorbs the constants of the back-projection variance integral)."""
POWER = 0.5
"""Exponent of ``|k|`` in the noise power spectrum."""
KAPPA = 0.02
"""OSEM cut-off times the bin width, per (iterations x subsets) ** GAMMA."""
GAMMA = 0.8
"""Growth of the OSEM cut-off with the number of sub-iterations."""


def radial_bin_mm(spacing_mm: Sequence[float], fwhm_mm: Sequence[float]) -> float:
    """The radial sampling a scanner of this resolution uses: ``max(pixel, transaxial fwhm / 2)``."""
    return max(min(spacing_mm[:2]), min(fwhm_mm[:2]) / 2)


def _chord_factors(body: np.ndarray, spacing: tuple[float, float], mu_per_mm: float, n_angles: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of a slice: ``mean exp(-mu L)`` and ``mean L exp(mu L)`` over chords of the body's disk."""
    area = float(body.sum()) * spacing[0] * spacing[1]
    radius = math.sqrt(area / math.pi)
    idx = np.argwhere(body)
    centre = idx.mean(0)
    x = (np.arange(body.shape[0]) - centre[0]) * spacing[0]
    y = (np.arange(body.shape[1]) - centre[1]) * spacing[1]
    rho = np.hypot(x[:, None], y[None, :])
    phi = (np.arange(n_angles) + 0.5) * np.pi / n_angles
    chords = 2 * np.sqrt(np.clip(radius**2 - (rho[..., None] * np.sin(phi)) ** 2, 0.0, None))
    return np.exp(-mu_per_mm * chords).mean(-1), (chords * np.exp(mu_per_mm * chords)).mean(-1)


def noise_spectrum(shape: Sequence[int], spacing: Sequence[float], cutoff: float) -> np.ndarray:
    """Amplitude filter ``sqrt(|k| ** POWER exp(-(k / cutoff)^2))`` on one slice's rfft grid (0 at k = 0)."""
    kx = np.fft.fftfreq(int(shape[0]), d=float(spacing[0]))
    ky = np.fft.rfftfreq(int(shape[1]), d=float(spacing[1]))
    k = np.hypot(kx[:, None], ky[None, :])
    power = np.power(k, POWER) * np.exp(-((k / cutoff) ** 2))
    return np.sqrt(power).astype(np.float32)


def _correlated_noise(rng: np.random.Generator, shape: tuple[int, int, int], amplitude: np.ndarray) -> np.ndarray:
    """Slices of unit white noise filtered by ``amplitude`` (variance ``sum |amplitude|^2 / N`` per slice)."""
    white = rng.standard_normal(shape, dtype=np.float32)
    spectrum = np.fft.rfft2(white, axes=(0, 1)) * amplitude[..., None]
    return np.fft.irfft2(spectrum, s=shape[:2], axes=(0, 1)).astype(np.float32)


def image_noise_doses(
    truth: np.ndarray,
    spacing_mm: Sequence[float],
    doses: Sequence[float] = (1.0, 0.25, 0.1),
    *,
    total_counts: float = 1e8,
    mu_per_cm: np.ndarray | None = None,
    fwhm_mm: float | Sequence[float] = 4.5,
    iterations: int = 4,
    subsets: int = 12,
    post_fwhm_mm: float | Sequence[float] | None = None,
    scatter_fraction: float = 0.3,
    randoms_fraction: float = 0.2,
    n_angles: int = 32,
    seed: int = 0,
) -> dict[float, np.ndarray]:
    """Image-domain low-dose PET scans of ``truth`` (see the module docstring).

    Args:
        truth: non-negative ``(nx, ny, nz)`` activity blurred by the system resolution.
        spacing_mm: voxel size per axis, mm.
        doses: fractions of the full dose in (0, 1].
        total_counts: expected prompts of the full dose (as for :func:`volgan.degrade.pet.simulate_doses`).
        mu_per_cm: attenuation map (1/cm) on the same grid; None: water where the truth exceeds 1 %
            of its maximum.
        fwhm_mm: the system resolution (sets the radial sampling, as the scanner's does).
        iterations, subsets: the OSEM settings the noise should resemble.
        post_fwhm_mm: Gaussian post-filter, mm; None for none.
        scatter_fraction, randoms_fraction: as the scanner's; they lower the noise-equivalent counts.
        n_angles: chord directions per voxel for the attenuation and path-length factors.
        seed: each dose draws from ``default_rng([seed, dose in ppb])``.

    Returns:
        ``{dose: image}``, float32 on the truth's grid and in its units.
    """
    a = np.asarray(truth, dtype=np.float32)
    if a.ndim != 3:
        raise ValueError(f"truth must be a 3D volume (nx, ny, nz), got shape {a.shape}")
    if not np.isfinite(a).all() or a.min() < 0:
        raise ValueError("truth must be finite and non-negative")
    if not a.max() > 0:
        raise ValueError("truth is zero everywhere: nothing to scan")
    spacing = _triple(spacing_mm, "spacing_mm")
    if min(spacing) <= 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    fwhm = _triple(fwhm_mm, "fwhm_mm")
    if not total_counts > 0 or iterations < 1 or subsets < 1:
        raise ValueError(f"need total_counts > 0, iterations >= 1, subsets >= 1; got {total_counts}, "
                         f"{iterations}, {subsets}")
    doses = [_check_dose(d) for d in doses]
    if not doses:
        raise ValueError("doses is empty")
    if mu_per_cm is None:
        mu = np.where(a > 0.01 * float(a.max()), np.float32(0.096), np.float32(0.0))
    else:
        mu = np.asarray(mu_per_cm, dtype=np.float32)
        if mu.shape != a.shape:
            raise ValueError(f"mu_per_cm has shape {mu.shape}, the truth {a.shape}")
    body = mu > 0.02

    pixel_area = spacing[0] * spacing[1]
    survive = np.zeros(a.shape, np.float32)  # mean attenuation factor per voxel
    path = np.zeros(a.shape, np.float32)  # mean a_mean * L * exp(mu L) per voxel
    for z in range(a.shape[2]):
        inside = body[..., z]
        if not inside.any():
            continue
        mean_mu = float(mu[..., z][inside].mean()) * 0.1
        e, l_exp = _chord_factors(inside, spacing[:2], mean_mu, n_angles)
        survive[..., z] = e
        path[..., z] = float(a[..., z][inside].mean()) * l_exp
    weighted = float((a * survive).sum(dtype=np.float64)) * pixel_area
    if not weighted > 0:
        raise ValueError("no activity inside the body (mu_per_cm above 0.02 /cm)")
    nec = float(total_counts) * ((1 - randoms_fraction) * (1 - scatter_fraction)) ** 2
    slice_mean = np.array([a[..., z][body[..., z]].mean() if body[..., z].any() else 0.0
                           for z in range(a.shape[2])], np.float32)
    ratio = np.divide(a, slice_mean, out=np.zeros_like(a), where=slice_mean > 0)
    variance_scale = GAIN * path * ratio * np.float32(weighted / nec)  # times 1 / dose

    bin_mm = radial_bin_mm(spacing, fwhm)
    cutoff = KAPPA * (iterations * subsets) ** GAMMA / bin_mm
    amplitude = noise_spectrum(a.shape[:2], spacing[:2], cutoff)
    # irfft2 of unit white noise times the filter has variance sum |H|^2 / N; the spectrum's
    # integral is sum |H|^2 dk^2 with dk^2 = 1 / (N pixel area): the noise is scaled by 1 / sqrt(pixel area)
    norm = 1.0 / math.sqrt(pixel_area)

    post = None if post_fwhm_mm is None else _triple(post_fwhm_mm, "post_fwhm_mm")
    out: dict[float, np.ndarray] = {}
    for d in doses:
        rng = np.random.default_rng([int(seed), round(d * 1e9)])
        noise = _correlated_noise(rng, a.shape, amplitude) * np.float32(norm)
        image = np.clip(a + np.sqrt(variance_scale / np.float32(d)) * noise, 0.0, None)
        if post is not None and max(post) > 0:
            image = gaussian_blur_mm(image, post, spacing)
        out[d] = image.astype(np.float32)
    return out
