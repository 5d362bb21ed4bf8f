"""Low-dose PET simulation: an activity volume -> noisy OSEM reconstructions at several dose fractions.

Entry point: :func:`simulate_doses`. Every dose is acquired and reconstructed with the same scanner
(:class:`PetScanner`), projector and system model:

1. the activity is blurred by the scanner's resolution (Gaussian PSF, ``fwhm_mm``, per-axis in mm);
2. attenuation: a user mu-map in **1/cm** on the activity's grid, or water (0.096 /cm) filling the body,
   the filled mask of the blurred activity above ``body_threshold`` of its maximum;
3. multi-slice 2D PET: every axial slice (array axes 0, 1; axis 2 is the scanner axis) is projected
   by the parallel-beam projector of :mod:`volgan.degrade.pet_projector` (no oblique lines of
   response); attenuation factors are ``exp(-A mu)`` with the same projector;
4. scatter (the attenuated trues smoothed radially and axially by ``scatter_fwhm_mm``; a scatter
   fraction ``S / (T + S)`` as in NEMA NU 2) and uniform randoms (a fraction ``R / prompts``);
5. Poisson prompts, scaled so that the full dose expects ``total_counts`` prompts for the volume;
   a dose ``f`` expects ``f * total_counts``. By default (``thinning=True``) a low dose keeps each
   full-dose count with probability ``f``, as list-mode decimation of a real scan does (the marginal
   is still Poisson); ``thinning=False`` draws every dose independently;
6. OSEM with attenuation and the expected scatter + randoms in the model (:mod:`volgan.degrade.pet_osem`),
   on the input grid, optionally post-smoothed; the images are in the activity's units, so full and low
   doses are directly comparable and a uniform region reconstructs to its activity within noise.

Examples::

    >>> from volgan.degrade.pet import simulate_doses
    >>> recons = simulate_doses(activity, (1.0, 1.0, 1.0), doses=(1.0, 0.25, 0.1), seed=0)
    >>> recons[0.1].shape == activity.shape
    True
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from monai.transforms import MapTransform
from scipy import ndimage

from volgan.degrade.pet_osem import osem, subset_sensitivities
from volgan.degrade.pet_projector import ParallelBeamProjector, parallel_projector

WATER_MU_PER_CM = 0.096
"""Linear attenuation of water at 511 keV, 1/cm."""


def _triple(value: float | Sequence[float], name: str) -> tuple[float, float, float]:
    values = (float(value),) * 3 if np.ndim(value) == 0 else tuple(float(v) for v in value)
    if len(values) != 3 or min(values) < 0 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be one non-negative number or three (per axis), got {value}")
    return values  # type: ignore[return-value]


def gaussian_blur_mm(
    volume: np.ndarray, fwhm_mm: float | Sequence[float], spacing_mm: Sequence[float]
) -> np.ndarray:
    """Gaussian blur with a FWHM given in mm per axis (zero outside the volume; self-adjoint). float32."""
    fwhm = _triple(fwhm_mm, "fwhm_mm")
    sigma = [f / (2 * math.sqrt(2 * math.log(2))) / s for f, s in zip(fwhm, spacing_mm)]
    v = np.asarray(volume, dtype=np.float32)
    if max(sigma) == 0:
        return v.copy()
    return ndimage.gaussian_filter(v, sigma, mode="constant", truncate=3.0)


def _smoothing_matrix(n: int, sigma: float) -> np.ndarray:
    offsets = np.arange(n)[:, None] - np.arange(n)[None, :]
    return np.exp(-0.5 * (offsets / max(sigma, 1e-6)) ** 2).astype(np.float32)


def _check_dose(dose: float) -> float:
    if not 0 < float(dose) <= 1:
        raise ValueError(f"a dose is a fraction of the full dose in (0, 1], got {dose}")
    return float(dose)


@dataclass(frozen=True)
class PetData:
    """Expected (noise-free) full-dose sinograms ``(n_angles, n_bins, nz)``, in counts.

    ``scale`` is the full-dose counts per unit of line integral (activity units x mm), so that a
    dose ``f`` reconstructs with ``scale * f``. ``randoms`` is the expected randoms per bin.
    """

    projector: ParallelBeamProjector
    trues: np.ndarray
    scatter: np.ndarray
    randoms: float
    attenuation: np.ndarray
    scale: float
    mu_per_cm: np.ndarray = field(repr=False)

    def background(self, dose: float = 1.0) -> np.ndarray:
        """Expected scatter + randoms at ``dose``."""
        return np.float32(_check_dose(dose)) * (self.scatter + np.float32(self.randoms))

    def expected(self, dose: float = 1.0) -> np.ndarray:
        """Expected prompts at ``dose``: ``dose * (trues + scatter + randoms)``."""
        return np.float32(_check_dose(dose)) * (self.trues + self.scatter + np.float32(self.randoms))

    def sample(
        self, doses: Sequence[float], seed: int = 0, *, thinning: bool = True
    ) -> dict[float, np.ndarray]:
        """Poisson prompts (float32 counts) per dose, reproducible from ``seed``.

        Each dose draws from ``numpy.random.default_rng([seed, dose in ppb])``, so its noise does not
        depend on which other doses are asked for. With ``thinning`` a dose ``f < 1`` is a binomial
        thinning of the full-dose prompts (drawn with the key of dose 1).
        """
        doses = [_check_dose(d) for d in doses]

        def rng(dose: float) -> np.random.Generator:
            return np.random.default_rng([int(seed), round(dose * 1e9)])

        out: dict[float, np.ndarray] = {}
        if thinning:
            full = rng(1.0).poisson(self.expected(1.0).astype(np.float64))
            for d in doses:
                counts = full if d == 1.0 else rng(d).binomial(full, d)
                out[d] = counts.astype(np.float32)
        else:
            for d in doses:
                out[d] = rng(d).poisson(self.expected(d).astype(np.float64)).astype(np.float32)
        return out


@dataclass(frozen=True)
class PetScanner:
    """A multi-slice 2D PET scanner for volumes of one grid.

    Args:
        shape: ``(nx, ny, nz)``; axis 2 is the scanner (axial) axis.
        spacing_mm: voxel size per axis, mm.
        fwhm_mm: system resolution, Gaussian FWHM in mm (one value or per axis); 0 for none.
        n_angles: views over 180 degrees; None: enough for an arc step of ``bin_mm`` at the edge of
            the field of view (``ceil(pi * R / bin_mm)``, ``R`` the slice's half diagonal).
        bin_mm: radial bin width; None: ``max(pixel size, transaxial fwhm / 2)`` (Nyquist for the
            resolution, never finer than a pixel).
        scatter_fraction: ``S / (T + S)`` of the expected counts, in [0, 1).
        randoms_fraction: ``R / (T + S + R)``, in [0, 1).
        scatter_fwhm_mm: width of the (Gaussian, radial and axial) scatter kernel in the sinogram.
        body_threshold: the body mask (for the water mu-map) is the filled region of the blurred
            activity above this fraction of its maximum.
        workers: threads for the projector's sparse products.

    Examples::

        >>> scanner = PetScanner((64, 64, 8), (2.0, 2.0, 2.0))
        >>> data = scanner.acquire(activity, total_counts=1e6)
        >>> image = scanner.reconstruct(data.sample([0.5])[0.5], data, dose=0.5)
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    fwhm_mm: float | tuple[float, float, float] = 4.5
    n_angles: int | None = None
    bin_mm: float | None = None
    scatter_fraction: float = 0.3
    randoms_fraction: float = 0.2
    scatter_fwhm_mm: float = 150.0
    body_threshold: float = 0.01
    workers: int = 1

    def __post_init__(self):
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape must be 3 positive sizes (nx, ny, nz), got {self.shape}")
        spacing = _triple(self.spacing_mm, "spacing_mm")
        if min(spacing) <= 0:
            raise ValueError(f"spacing_mm must be positive, got {self.spacing_mm}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing_mm", spacing)
        _triple(self.fwhm_mm, "fwhm_mm")
        for name in ("scatter_fraction", "randoms_fraction", "body_threshold"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def radial_bin_mm(self) -> float:
        if self.bin_mm is not None:
            return float(self.bin_mm)
        fwhm = _triple(self.fwhm_mm, "fwhm_mm")
        return max(min(self.spacing_mm[:2]), min(fwhm[:2]) / 2)

    @property
    def views(self) -> int:
        if self.n_angles is not None:
            return int(self.n_angles)
        (nx, ny, _), (sx, sy, _) = self.shape, self.spacing_mm
        radius = math.hypot((nx - 1) * sx, (ny - 1) * sy) / 2
        return max(2, math.ceil(math.pi * radius / self.radial_bin_mm))

    def projector(self, n_subsets: int = 1) -> ParallelBeamProjector:
        """The (cached) projector of one axial slice, with views in ``n_subsets`` OSEM subsets."""
        if not 1 <= n_subsets <= self.views:
            raise ValueError(f"subsets must be in [1, n_angles={self.views}], got {n_subsets}")
        return parallel_projector(
            self.shape[:2], self.spacing_mm[:2], self.views, self.radial_bin_mm, int(n_subsets), int(self.workers)
        )

    def blur(self, volume: np.ndarray) -> np.ndarray:
        """The scanner's resolution (image-space PSF)."""
        return gaussian_blur_mm(volume, self.fwhm_mm, self.spacing_mm)

    def check_activity(self, activity: np.ndarray) -> np.ndarray:
        a = np.asarray(activity, dtype=np.float32)
        if a.ndim != 3:
            raise ValueError(f"activity must be a 3D volume (nx, ny, nz), got shape {a.shape}")
        if a.shape != self.shape:
            raise ValueError(f"activity has shape {a.shape}, the scanner {self.shape}: make a PetScanner for it")
        if not np.isfinite(a).all():
            raise ValueError("activity has NaN or infinite values")
        if a.min() < 0:
            raise ValueError(f"activity must be non-negative, min is {a.min():g}; clip it (np.clip(a, 0, None))")
        if not a.max() > 0:
            raise ValueError("activity is zero everywhere: nothing to acquire")
        return a

    def mu_map(self, blurred_activity: np.ndarray, mu_map: np.ndarray | None = None) -> np.ndarray:
        """Attenuation map in 1/cm: ``mu_map`` checked, or water in the filled body mask."""
        if mu_map is None:
            body = blurred_activity > self.body_threshold * float(blurred_activity.max())
            body = ndimage.binary_fill_holes(body)
            return np.where(body, np.float32(WATER_MU_PER_CM), np.float32(0.0))
        mu = np.asarray(mu_map, dtype=np.float32)
        if mu.shape != self.shape:
            raise ValueError(
                f"mu_map has shape {mu.shape}, the activity {self.shape}: resample it onto the activity grid"
            )
        if not np.isfinite(mu).all() or mu.min() < 0:
            raise ValueError("mu_map must be finite and non-negative (1/cm)")
        if mu.max() > 2.0:
            raise ValueError(f"mu_map maximum {mu.max():g} is not in 1/cm (water 0.096, bone ~0.17); convert it")
        if 0 < mu.max() < 0.02:
            raise ValueError(f"mu_map maximum {mu.max():g} looks like 1/mm; multiply by 10 for 1/cm")
        return mu

    def acquire(
        self,
        activity: np.ndarray,
        *,
        mu_map: np.ndarray | None = None,
        total_counts: float = 1e8,
        projector: ParallelBeamProjector | None = None,
    ) -> PetData:
        """Expected full-dose sinograms of ``activity`` (steps 1-5 of the module docstring, without noise).

        Args:
            activity: non-negative ``(nx, ny, nz)`` volume, any activity units.
            mu_map: attenuation in 1/cm on the same grid; None for water in the body mask.
            total_counts: expected prompts (trues + scatter + randoms) of the full dose.
            projector: one of :meth:`projector` (any subsets); default ``projector(1)``.
        """
        a = self.check_activity(activity)
        if not total_counts > 0:
            raise ValueError(f"total_counts must be positive, got {total_counts}")
        proj = projector if projector is not None else self.projector(1)
        blurred = self.blur(a)
        mu = self.mu_map(blurred, mu_map)
        attenuation = np.exp(-proj.forward(mu * np.float32(0.1)))  # 1/cm -> 1/mm, line integrals in mm
        trues = proj.forward(blurred)
        trues *= attenuation
        unrandom = 1 - self.randoms_fraction  # (T + S) / prompts
        total_trues = float(total_counts) * unrandom * (1 - self.scatter_fraction)
        scale = total_trues / float(trues.sum(dtype=np.float64))
        trues *= np.float32(scale)
        scatter = np.zeros_like(trues)
        if self.scatter_fraction > 0:
            sigma = self.scatter_fwhm_mm / (2 * math.sqrt(2 * math.log(2)))
            radial = _smoothing_matrix(proj.n_bins, sigma / proj.bin_mm)
            axial = _smoothing_matrix(self.shape[2], sigma / self.spacing_mm[2])
            scatter = np.matmul(np.matmul(radial, trues), axial)
            total_scatter = float(total_counts) * unrandom * self.scatter_fraction
            scatter *= np.float32(total_scatter / float(scatter.sum(dtype=np.float64)))
        randoms = float(total_counts) * self.randoms_fraction / trues.size
        return PetData(proj, trues, scatter.astype(np.float32), randoms, attenuation, scale, mu)

    def reconstruct(
        self,
        prompts: np.ndarray,
        data: PetData,
        *,
        dose: float = 1.0,
        iterations: int = 4,
        post_fwhm_mm: float | Sequence[float] | None = None,
        model_psf: bool = False,
        sensitivities: list[np.ndarray] | None = None,
    ) -> np.ndarray:
        """OSEM of ``prompts`` acquired at ``dose`` (subsets: those of ``data.projector``), in activity units."""
        dose = _check_dose(dose)
        psf = self.blur if model_psf else None
        image = osem(
            prompts,
            data.projector,
            attenuation=data.attenuation,
            background=data.background(dose),
            scale=data.scale * dose,
            iterations=iterations,
            psf=psf,
            sensitivities=sensitivities,
        )
        if post_fwhm_mm is not None:
            image = gaussian_blur_mm(image, post_fwhm_mm, self.spacing_mm)
        return image


def simulate_doses(
    activity: np.ndarray,
    spacing_mm: Sequence[float],
    doses: Sequence[float] = (1.0, 0.25, 0.1),
    *,
    total_counts: float = 1e8,
    mu_map: np.ndarray | None = None,
    seed: int = 0,
    iterations: int = 4,
    subsets: int = 12,
    post_fwhm_mm: float | Sequence[float] | None = None,
    model_psf: bool = False,
    thinning: bool = True,
    scanner: PetScanner | None = None,
) -> dict[float, np.ndarray]:
    """Simulate PET scans of ``activity`` at dose fractions ``doses`` and reconstruct them (OSEM).

    Args:
        activity: non-negative ``(nx, ny, nz)`` activity (or a full-dose image used as one); axis 2
            is the scanner axis.
        spacing_mm: voxel size per axis, mm.
        doses: fractions of the full dose in (0, 1], e.g. ``(1, 1/4, 1/10, 1/20)``.
        total_counts: expected prompts of the full dose for the whole volume.
        mu_map: attenuation in 1/cm on the activity grid; None for water in the body mask.
        seed: noise seed (see :meth:`PetData.sample`); same seed, same images.
        iterations, subsets: OSEM iterations and subsets (of interleaved views).
        post_fwhm_mm: Gaussian post-filter FWHM in mm (one or per axis); None for none.
        model_psf: model the scanner blur in the reconstruction (resolution recovery; slower).
        thinning: low doses are binomial thinnings of the full-dose counts (list-mode decimation);
            False: independent Poisson draws.
        scanner: the scanner; default ``PetScanner(activity.shape, spacing_mm)``.

    Returns:
        ``{dose: image}``, float32 images on the activity's grid and in its units.
    """
    if np.ndim(activity) != 3:
        raise ValueError(f"activity must be a 3D volume (nx, ny, nz), got shape {np.shape(activity)}")
    doses = [_check_dose(d) for d in doses]
    if not doses:
        raise ValueError("doses is empty")
    if scanner is None:
        scanner = PetScanner(tuple(np.shape(activity)), tuple(spacing_mm))
    elif not np.allclose(scanner.spacing_mm, _triple(spacing_mm, "spacing_mm")):
        raise ValueError(f"spacing_mm {tuple(spacing_mm)} differs from the scanner's {scanner.spacing_mm}")
    data = scanner.acquire(activity, mu_map=mu_map, total_counts=total_counts, projector=scanner.projector(subsets))
    prompts = data.sample(doses, seed, thinning=thinning)
    sens = subset_sensitivities(data.projector, data.attenuation, scanner.blur if model_psf else None)
    return {
        d: scanner.reconstruct(
            prompts[d], data, dose=d, iterations=iterations, post_fwhm_mm=post_fwhm_mm,
            model_psf=model_psf, sensitivities=sens,
        )
        for d in doses
    }


class SimulateLowDosePetd(MapTransform):
    """Make a low-dose PET input from a clean activity (or full-dose) image, deterministically.

    Reads ``source_key`` (``(1, x, y, z)`` or ``(x, y, z)``; tensor or array), writes ``output_key``
    with the same shape and type: :func:`simulate_doses` at ``dose`` with ``seed``. The spacing is
    ``spacing_mm`` or, when None, the MetaTensor's ``pixdim``. Cacheable (no randomness).
    """

    def __init__(
        self,
        source_key: str = "label",
        output_key: str = "image",
        dose: float = 0.25,
        *,
        spacing_mm: Sequence[float] | None = None,
        seed: int = 0,
        **options,
    ):
        MapTransform.__init__(self, keys=[source_key])
        self.source_key, self.output_key, self.dose = source_key, output_key, _check_dose(dose)
        self.spacing_mm, self.seed, self.options = spacing_mm, int(seed), options

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        src = d[self.source_key]
        arr = src.detach().cpu().numpy() if isinstance(src, torch.Tensor) else np.asarray(src)
        channel = arr.ndim == 4
        if channel and arr.shape[0] != 1:
            raise ValueError(f"expected one channel, got shape {arr.shape}")
        spacing = self.spacing_mm
        if spacing is None:
            if not hasattr(src, "pixdim"):
                raise ValueError("no spacing: pass spacing_mm or a MetaTensor with an affine")
            spacing = tuple(float(s) for s in src.pixdim)
        volume = arr[0] if channel else arr
        image = simulate_doses(volume, spacing, (self.dose,), seed=self.seed, **self.options)[self.dose]
        image = image[None] if channel else image
        if isinstance(src, torch.Tensor):
            out = src.detach().clone().float()
            out.copy_(torch.from_numpy(image))
            d[self.output_key] = out
        else:
            d[self.output_key] = image
        return d
