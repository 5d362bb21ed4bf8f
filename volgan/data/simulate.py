"""Simulated cross-contrast pairs with known geometry, for testing and benchmarking alignment.

A PET-like image is made from tissue maps of an MR's anatomy, moved by a known rigid transform
and resampled onto another grid (spacing, direction, origin), so a registration can be scored
against the truth (target registration error in mm).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage


def pet_like(gm: np.ndarray, wm: np.ndarray, brain: np.ndarray, spacing: tuple[float, ...], *,
             fwhm_mm: float = 6.0, noise: float = 0.03, seed: int = 0) -> np.ndarray:
    """FDG-like uptake (grey matter 4, white matter 1.2, CSF 0.3) blurred to ``fwhm_mm``, with noise.

    ``gm`` and ``wm`` are tissue probabilities (any scale, normalised by their maxima); ``brain`` is
    a boolean mask. Returns float32 values in SUV-like units.
    """
    gm = gm / max(float(gm.max()), 1e-6)
    wm = wm / max(float(wm.max()), 1e-6)
    csf = np.clip(brain.astype(np.float32) - gm - wm, 0, 1)
    uptake = 4.0 * gm + 1.2 * wm + 0.3 * csf
    sigma = [fwhm_mm / (2.3548 * s) for s in spacing]
    blurred = ndimage.gaussian_filter(uptake, sigma)
    rng = np.random.default_rng(seed)
    noisy = blurred + rng.normal(0.0, noise * float(blurred.max()), blurred.shape) * (blurred > 0.05)
    return noisy.clip(0).astype(np.float32)


def rigid_transform(angles_deg: tuple[float, float, float], shift_mm: tuple[float, float, float],
                    centre: tuple[float, float, float]) -> sitk.Euler3DTransform:
    """Rotation about ``centre`` (LPS mm) by ``angles_deg`` about x, y, z, then a shift in mm."""
    transform = sitk.Euler3DTransform()
    transform.SetCenter(tuple(float(c) for c in centre))
    transform.SetRotation(*(float(np.deg2rad(a)) for a in angles_deg))
    transform.SetTranslation(tuple(float(s) for s in shift_mm))
    return transform


def image_centre(image: sitk.Image) -> np.ndarray:
    """World (LPS) position of the centre of the image's voxel grid."""
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()]))


def move_onto_grid(image: sitk.Image, transform: sitk.Transform, spacing: tuple[float, float, float],
                   direction: np.ndarray, offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
                   margin_mm: float = 10.0) -> sitk.Image:
    """``image`` moved by ``transform`` (anatomy at x appears at ``transform(x)``), resampled onto a
    new grid with ``spacing`` and ``direction`` (3x3, LPS) covering the moved field of view plus a
    margin, its centre shifted by ``offset_mm``."""
    size = np.asarray(image.GetSize()) * np.asarray(image.GetSpacing())
    n = np.ceil((size.max() + 2 * margin_mm) / np.asarray(spacing)).astype(int)
    centre = np.asarray(transform.TransformPoint(tuple(image_centre(image)))) + np.asarray(offset_mm)
    direction = np.asarray(direction, dtype=float).reshape(3, 3)
    origin = centre - direction @ ((n - 1) / 2 * np.asarray(spacing))
    grid = sitk.Image([int(v) for v in n], sitk.sitkFloat32)
    grid.SetSpacing(tuple(float(s) for s in spacing))
    grid.SetDirection(tuple(float(v) for v in direction.ravel()))
    grid.SetOrigin(tuple(float(v) for v in origin))
    return sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), grid, transform.GetInverse(), sitk.sitkLinear, 0.0)


def target_registration_error(found: sitk.Transform, truth: sitk.Transform, points: np.ndarray) -> np.ndarray:
    """Distance in mm between where ``found`` and ``truth`` map each (LPS) point."""
    return np.array([np.linalg.norm(np.subtract(found.TransformPoint(tuple(p)), truth.TransformPoint(tuple(p))))
                     for p in np.asarray(points, dtype=float)])
