"""Synthetic super-resolution pairs: a fresh subject per item, degraded as the SR bundle's inputs are.

Two acquisitions, both returned on the clean subject's grid (the network refines a volume already
on its output grid, as the bundle's predictor feeds it):

- **thick slices** along a random axis: slices ``spacing`` voxels apart (``thick_range``), each the
  weighted mean of the thin slices under a random slice profile (box or Gaussian) of width
  ``spacing - gap`` (``gap_range``, a fraction of the spacing), at a random offset; then resampled back
  onto the thin grid with the bundle's own interpolation
  (:func:`volgan.data.target_grid.resample_to_target`, cubic B-spline by default);
- **k-space truncation**: the central fraction of k-space kept along two random axes
  (``kspace_factor_range``: 2 is Chen et al.'s 2x2 truncation, 1.5-3 around it).

The degraded volume is made on a margin around the patch and the patch cropped from its interior, so
patch borders do not show the wrap-around of a patch-sized FFT or the edge of a thick-slice stack.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from volgan.data.synth.dataset import SynthPairDataset
from volgan.data.synth.mr_generator import SynthMRGenerator
from volgan.data.target_grid import resample_to_target
from volgan.degrade.kspace import truncate_kspace
from volgan.io.volume import Volume

PROFILES = ("box", "gaussian")


def slice_profile(width: float, kind: str) -> np.ndarray:
    """Normalised 1D weights over thin slices of a slice ``width`` thin voxels wide.

    ``box``: every thin slice whose centre lies inside the slab, partial weight at its edges;
    ``gaussian``: a Gaussian whose full width at half maximum is ``width``.
    """
    if width <= 0:
        raise ValueError(f"slice width must be positive, got {width}")
    if kind == "box":
        half = width / 2
        x = np.arange(-int(np.ceil(half)), int(np.ceil(half)) + 1, dtype=np.float64)
        weights = np.clip(half + 0.5 - np.abs(x), 0.0, 1.0)
    elif kind == "gaussian":
        sigma = width / 2.3548
        x = np.arange(-int(np.ceil(3 * sigma)), int(np.ceil(3 * sigma)) + 1, dtype=np.float64)
        weights = np.exp(-0.5 * (x / sigma) ** 2)
    else:
        raise ValueError(f"slice profile must be one of {PROFILES}, got {kind!r}")
    return weights / weights.sum()


def thick_slice_acquisition(clean: np.ndarray, axis: int, spacing: int, width: float, profile: str,
                            offset: int, interpolation: str = "cubic") -> np.ndarray:
    """``clean`` acquired as slices ``spacing`` voxels apart along ``axis`` and resampled back.

    Thick slice ``i`` is centred on thin index ``offset + i * spacing + (spacing - 1) / 2`` and weighs
    the thin slices by :func:`slice_profile`; the stack is resampled onto the thin grid covering
    the same extent (thin slices ``offset .. offset + n * spacing - 1``), which is returned.
    """
    axis, spacing, offset = int(axis) % 3, int(spacing), int(offset)
    count = (clean.shape[axis] - offset) // spacing
    if spacing < 1 or count < 1:
        raise ValueError(f"axis {axis} with {clean.shape[axis]} slices has no slab of {spacing} after offset {offset}")
    weighted = ndimage.convolve1d(clean.astype(np.float32), slice_profile(width, profile).astype(np.float32),
                                  axis=axis, mode="nearest")
    centres = offset + np.arange(count) * spacing + (spacing - 1) / 2.0
    lower = np.floor(centres).astype(int)
    frac = (centres - lower).astype(np.float32).reshape([-1 if a == axis else 1 for a in range(3)])
    upper = np.minimum(lower + 1, clean.shape[axis] - 1)
    thick = (1 - frac) * np.take(weighted, lower, axis=axis) + frac * np.take(weighted, upper, axis=axis)
    affine = np.eye(4)
    affine[axis, axis] = spacing
    thin = resample_to_target(Volume(thick.astype(np.float32), affine), 1.0, interpolation,
                              max_coarsening=float("inf"))
    return thin.array


class SynthSRDataset(SynthPairDataset):
    """``{"image": degraded, "label": clean}`` super-resolution pairs, each item a new subject.

    The generator's ``shape`` is the drawn field (patch plus margin); items are ``(1, *patch_size)``
    float32 tensors cropped from the interior. Intensities as in
    :class:`~volgan.data.synth.SynthDenoisingDataset`: brightest tissue about 1, times ``1 +-
    scale_jitter``. Item ``i`` is the same for the same ``seed`` and :attr:`epoch`.

    Args:
        generator: the subject generator (draw it at about 1 mm, without thick slices).
        patch_size: size of the returned pairs (at most the generator's shape minus
            ``2 * (thick_range[1] - 1)`` along every axis).
        length: items per epoch.
        seed: base seed.
        thick_probability: share of thick-slice items (the rest are k-space truncated).
        thick_range: slice spacing range in thin voxels (inclusive integers).
        thick_axes: the axes a thick-slice stack may lie along (drawn uniformly); a single axis
            matches a predictor that turns every input's slice axis there
            (:class:`~volgan.inference.target_grid.TargetGridPredictor`'s ``slice_axis``).
        gap_range: slice gap range, as a fraction of the spacing (the slice width is the rest).
        kspace_factor_range: k-space reduction factor per truncated axis (kept fraction ``1 / f``).
        kspace_axes: the two truncated (phase-encode) axes; ``None``: two axes drawn at random.
        interpolation: how thick slices are resampled back (the bundle's ``interpolation``).
        scale_jitter: relative spread of the intensity scale.
    """

    def __init__(self, generator: SynthMRGenerator, patch_size: Sequence[int] = (32, 32, 32), length: int = 1000, *,
                 seed: int = 0, thick_probability: float = 0.6, thick_range: tuple[int, int] = (2, 6),
                 thick_axes: Sequence[int] = (0, 1, 2), gap_range: tuple[float, float] = (0.0, 0.3),
                 kspace_factor_range: tuple[float, float] = (1.5, 3.0), kspace_axes: Sequence[int] | None = None,
                 interpolation: str = "cubic", scale_jitter: float = 0.2):
        super().__init__(generator, length, seed, scale_jitter)
        self.patch_size = tuple(int(p) for p in patch_size)
        lo, hi = int(thick_range[0]), int(thick_range[1])
        if not 2 <= lo <= hi:
            raise ValueError(f"thick_range must be integers (low, high) with 2 <= low <= high, got {thick_range}")
        # a stack at offset < spacing covering whole slabs loses at most 2 * (spacing - 1) slices
        if any(g - p < 2 * (hi - 1) for g, p in zip(generator.shape, self.patch_size)):
            raise ValueError(f"the generator's shape {generator.shape} must exceed patch_size {self.patch_size} by at "
                             f"least twice the largest slice spacing less one ({2 * (hi - 1)}) along every axis")
        if not 0 <= gap_range[0] <= gap_range[1] < 1:
            raise ValueError(f"gap_range must be fractions (low, high) in [0, 1), got {gap_range}")
        if not 1 < kspace_factor_range[0] <= kspace_factor_range[1]:
            raise ValueError(f"kspace_factor_range must be (low, high) with 1 < low <= high, got {kspace_factor_range}")
        if not 0 <= thick_probability <= 1:
            raise ValueError(f"thick_probability must be in [0, 1], got {thick_probability}")
        self.thick_axes = tuple(int(a) for a in thick_axes)
        if not self.thick_axes or not set(self.thick_axes) <= {0, 1, 2}:
            raise ValueError(f"thick_axes must be a non-empty subset of (0, 1, 2), got {thick_axes}")
        self.kspace_axes = None if kspace_axes is None else tuple(int(a) for a in kspace_axes)
        if self.kspace_axes is not None and (len(set(self.kspace_axes)) != 2 or not set(self.kspace_axes) <= {0, 1, 2}):
            raise ValueError(f"kspace_axes must be two distinct axes of (0, 1, 2) or None, got {kspace_axes}")
        self.thick_probability, self.thick_range = float(thick_probability), (lo, hi)
        self.gap_range = (float(gap_range[0]), float(gap_range[1]))
        self.kspace_factor_range = (float(kspace_factor_range[0]), float(kspace_factor_range[1]))
        self.interpolation = interpolation

    def degrade(self, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
        """``(degraded, clean, acquisition)``: a thick-slice stack covers whole slabs only, so both
        arrays are cut to the thin slices it covers; k-space truncation keeps the grid."""
        if rng.uniform() < self.thick_probability:
            axis = self.thick_axes[int(rng.integers(len(self.thick_axes)))]
            spacing = int(rng.integers(self.thick_range[0], self.thick_range[1] + 1))
            width = spacing * (1.0 - rng.uniform(*self.gap_range))
            profile = PROFILES[int(rng.integers(len(PROFILES)))]
            offset = int(rng.integers(spacing))
            degraded = thick_slice_acquisition(clean, axis, spacing, width, profile, offset, self.interpolation)
            # the thin grid starts at `offset`; keep the two arrays aligned
            clean = np.take(clean, np.arange(offset, offset + degraded.shape[axis]), axis=axis)
            return degraded, clean, {"kind": "thick", "axis": axis, "spacing": spacing, "width": width,
                                     "profile": profile, "offset": offset}
        axes = self.kspace_axes or tuple(int(a) for a in rng.choice(3, size=2, replace=False))
        factors = tuple(float(f) for f in rng.uniform(*self.kspace_factor_range, size=2))
        degraded = truncate_kspace(clean, [1.0 / f for f in factors], axes=axes)
        return degraded, clean, {"kind": "kspace", "axes": axes, "factors": factors}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        clean, rng = self.subject(index)
        degraded, clean, _ = self.degrade(clean, rng)
        start = [(n - p) // 2 + int(rng.integers(-((n - p) // 4), (n - p) // 4 + 1))
                 for n, p in zip(clean.shape, self.patch_size)]
        crop = tuple(slice(s, s + p) for s, p in zip(start, self.patch_size))
        return {"image": torch.from_numpy(np.ascontiguousarray(degraded[crop], dtype=np.float32)[None]),
                "label": torch.from_numpy(np.ascontiguousarray(clean[crop], dtype=np.float32)[None])}
