"""Brain FDG PET phantoms drawn at scanner grids, with their simulated full- and low-dose scans.

Per subject, at random (all from one seeded generator):

- anatomy: the tissue maps of a :class:`~volgan.data.synth.anatomy.TissueAnatomy` moved by a
  random affine and smooth deformation (:func:`~volgan.data.synth.spatial.draw_spatial`) and
  averaged over each output voxel (partial volume: sub-voxel samples, box average);
- the grid: transaxial voxel size in ``spacing_range`` (1.5-4 mm), the axial one the same or, with
  ``anisotropic_probability``, drawn on its own; a fixed field of view in mm, so the voxel count
  follows the voxel size;
- FDG-like uptake in SUV: grey matter in ``gm_suv_range``, white matter a grey/white ratio of
  ``gm_wm_ratio_range``, CSF, scalp and skull/muscle small fractions of grey matter, and a smooth
  regional variation of grey-matter uptake;
- lesions: 0 to ``max_lesions`` spheres of diameter ``lesion_diameter_mm``, centred in grey or white
  matter, with uptake ``lesion_contrast`` (1.5-6) times the tissue's around them;
- the scanner: system resolution (Gaussian FWHM, ``fwhm_range``, 3-6 mm; the axial one within
  15 % of the transaxial), full-dose prompts (``counts_range``, log-uniform), OSEM iterations and a
  post-filter width.

A draw gives the noise-free activity, the *truth* (the activity blurred by the system resolution:
what an ideal scanner with the same resolution would show, the reference for scoring) and, unless
asked not to, the scans at every dose of ``doses`` from one of two independent simulators:

- ``osem``: :func:`volgan.degrade.pet.simulate_doses` (projection, attenuation, scatter, randoms,
  Poisson counts, OSEM) on the drawn grid;
- ``image``: :func:`volgan.degrade.pet_image_noise.image_noise_doses` (the truth, post-filtered,
  plus spatially correlated activity-dependent noise at the level the counts give).

Examples::

    >>> from volgan.data.synth import PetPhantomGenerator, TissueAnatomy
    >>> gen = PetPhantomGenerator(TissueAnatomy.load("data/synth/anatomy.npz"))
    >>> draw = gen.draw(0)
    >>> draw.scans[0.1].shape == draw.truth.shape == draw.activity.shape
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from volgan.data.synth.anatomy import TISSUES, TissueAnatomy
from volgan.data.synth.mr_generator import sample, smooth_field
from volgan.data.synth.spatial import SpatialDraw, draw_spatial, sampling_coordinates
from volgan.degrade.pet import PetScanner, gaussian_blur_mm, simulate_doses
from volgan.degrade.pet_image_noise import image_noise_doses

DOSES: tuple[float, ...] = (1.0, 0.25, 0.1, 0.05)
"""Full dose, 1/4, 1/10 and 1/20."""

SIMULATORS: tuple[str, ...] = ("osem", "image")

MU_PER_CM: dict[str, float] = {"grey_matter": 0.096, "white_matter": 0.096, "csf": 0.096, "scalp": 0.096,
                               "skull": 0.13}
"""Attenuation at 511 keV per tissue, 1/cm: water for soft tissue; the anatomy's dark class outside the
brain is skull and muscle together, between bone (0.15-0.17) and muscle (0.099)."""

_GM, _WM, _CSF, _SCALP, _SKULL = (TISSUES.index(t) for t in ("grey_matter", "white_matter", "csf", "scalp",
                                                             "skull"))


@dataclass(frozen=True)
class Lesion:
    """One spherical lesion: centre (output voxel index), diameter (mm), uptake ratio, host tissue."""

    centre: tuple[int, int, int]
    diameter_mm: float
    contrast: float
    tissue: str


@dataclass(frozen=True)
class PetPhantom:
    """One drawn PET subject on its scanner grid.

    Attributes:
        activity: ``(X, Y, Z)`` float32 noise-free activity in SUV (partial-volume averaged).
        truth: the activity blurred by the system resolution ``fwhm_mm`` (the scoring reference).
        mu_per_cm: attenuation map, 1/cm.
        brain: bool mask, grey + white matter + CSF above one half.
        lesions: int16 labels, 1..n for ``lesion_list`` in order (voxels at least half inside).
        spacing: voxel size in mm (axis 2 is the scanner axis).
        fwhm_mm: system resolution per axis, mm.
        total_counts: expected full-dose prompts of the scan.
        iterations: OSEM iterations of the reconstruction.
        subsets: OSEM subsets.
        post_fwhm_mm: Gaussian post-filter of the reconstruction, mm (0: none).
        uptake: SUV per tissue (before the regional variation and the lesions).
        lesion_list: the lesions.
        spatial: the geometry drawn from the anatomy.
        noise_seed: seed of the scans' noise.
        scans: ``{dose: image}`` in SUV on the same grid (empty until simulated).
        simulator: which simulator made ``scans`` (``osem`` or ``image``), or ``""``.
    """

    activity: np.ndarray
    truth: np.ndarray
    mu_per_cm: np.ndarray
    brain: np.ndarray
    lesions: np.ndarray
    spacing: tuple[float, float, float]
    fwhm_mm: tuple[float, float, float]
    total_counts: float
    iterations: int
    subsets: int
    post_fwhm_mm: float
    uptake: dict[str, float]
    lesion_list: tuple[Lesion, ...]
    spatial: SpatialDraw = field(repr=False)
    noise_seed: int = 0
    scans: dict[float, np.ndarray] = field(default_factory=dict, repr=False)
    simulator: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.activity.shape)  # type: ignore[return-value]

    @property
    def affine(self) -> np.ndarray:
        """A RAS affine with the phantom's voxel size, centred on the grid (for writing NIfTI)."""
        affine = np.diag([*self.spacing, 1.0])
        affine[:3, 3] = -(np.asarray(self.shape) - 1) / 2 * np.asarray(self.spacing)
        return affine

    def params(self) -> dict:
        """The drawn factors as plain JSON-able values (for provenance files)."""
        return {
            "shape": list(self.shape),
            "spacing_mm": list(self.spacing),
            "fwhm_mm": list(self.fwhm_mm),
            "total_counts": self.total_counts,
            "osem": {"iterations": self.iterations, "subsets": self.subsets, "post_fwhm_mm": self.post_fwhm_mm},
            "uptake_suv": dict(self.uptake),
            "lesions": [
                {"label": i + 1, "centre_voxel": list(les.centre), "diameter_mm": les.diameter_mm,
                 "contrast": les.contrast, "tissue": les.tissue}
                for i, les in enumerate(self.lesion_list)
            ],
            "noise_seed": self.noise_seed,
            "simulator": self.simulator,
            "doses": sorted(self.scans, reverse=True),
        }

    def scanner(self) -> PetScanner:
        """The scanner of this phantom's grid and resolution."""
        return PetScanner(self.shape, self.spacing, fwhm_mm=self.fwhm_mm)


def _as_rng(rng: np.random.Generator | int) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(int(rng))


def _check_range(value: Sequence[float], name: str, low: float = 0.0) -> tuple[float, float]:
    a, b = (float(v) for v in value)
    if not low <= a <= b or not math.isfinite(b):
        raise ValueError(f"{name} must be (low, high) with {low:g} <= low <= high, got {value}")
    return a, b


class PetPhantomGenerator:
    """Draws :class:`PetPhantom` subjects from one tissue anatomy (see the module docstring).

    Args:
        anatomy: tissue maps to draw from (training anatomy, or a held-out one).
        field_of_view_mm: extent of the output grid per axis, mm; the voxel count is
            ``round(fov / voxel size)``.
        spacing_range: transaxial voxel size range, mm.
        anisotropic_probability: probability that the axial voxel size is drawn on its own.
        fwhm_range: system resolution range (transaxial FWHM), mm.
        counts_range: full-dose expected prompts, drawn log-uniformly.
        doses: dose fractions simulated per draw (1 is the full dose).
        max_lesions: lesions per subject are ``min_lesions..max_lesions``, uniformly.
        min_lesions: the fewest lesions per subject (placed while there is room).
        lesion_diameter_mm: diameter range.
        lesion_contrast: lesion uptake / host tissue uptake range.
        gm_suv_range: grey-matter SUV range.
        gm_wm_ratio_range: grey / white matter uptake ratio range.
        iterations_range: OSEM iterations (inclusive integer range).
        subsets: OSEM subsets (fewer when the grid has fewer views).
        post_fwhm_range: Gaussian post-filter range, mm (0 for none).
        centre_jitter_mm: head position in the field of view: the grid centre is the anatomy's
            head centre moved by up to this much per axis.
        spatial_kwargs: options of :func:`~volgan.data.synth.spatial.draw_spatial` (rotation, scale,
            shear, deformation); its voxel-size options are replaced by the ones above.
    """

    def __init__(
        self,
        anatomy: TissueAnatomy,
        *,
        field_of_view_mm: Sequence[float] = (208.0, 240.0, 184.0),
        spacing_range: Sequence[float] = (1.5, 4.0),
        anisotropic_probability: float = 0.5,
        fwhm_range: Sequence[float] = (3.0, 6.0),
        counts_range: Sequence[float] = (3e7, 3e8),
        doses: Sequence[float] = DOSES,
        max_lesions: int = 5,
        min_lesions: int = 0,
        lesion_diameter_mm: Sequence[float] = (5.0, 20.0),
        lesion_contrast: Sequence[float] = (1.5, 6.0),
        gm_suv_range: Sequence[float] = (6.0, 11.0),
        gm_wm_ratio_range: Sequence[float] = (2.5, 4.5),
        iterations_range: Sequence[int] = (2, 4),
        subsets: int = 12,
        post_fwhm_range: Sequence[float] = (0.0, 4.0),
        centre_jitter_mm: float = 8.0,
        **spatial_kwargs,
    ):
        self.anatomy = anatomy
        fov = tuple(float(f) for f in field_of_view_mm)
        if len(fov) != 3 or min(fov) <= 0:
            raise ValueError(f"field_of_view_mm must be three positive lengths, got {field_of_view_mm}")
        self.field_of_view_mm = fov
        self.spacing_range = _check_range(spacing_range, "spacing_range", 1e-3)
        self.fwhm_range = _check_range(fwhm_range, "fwhm_range")
        self.counts_range = _check_range(counts_range, "counts_range", 1.0)
        self.lesion_diameter_mm = _check_range(lesion_diameter_mm, "lesion_diameter_mm")
        self.lesion_contrast = _check_range(lesion_contrast, "lesion_contrast", 1.0)
        self.gm_suv_range = _check_range(gm_suv_range, "gm_suv_range", 1e-6)
        self.gm_wm_ratio_range = _check_range(gm_wm_ratio_range, "gm_wm_ratio_range", 1e-6)
        self.post_fwhm_range = _check_range(post_fwhm_range, "post_fwhm_range")
        lo, hi = (int(i) for i in iterations_range)
        if not 1 <= lo <= hi:
            raise ValueError(f"iterations_range must be (low, high) with 1 <= low <= high, got {iterations_range}")
        self.iterations_range = (lo, hi)
        if not 0 <= anisotropic_probability <= 1:
            raise ValueError(f"anisotropic_probability must be in [0, 1], got {anisotropic_probability}")
        self.anisotropic_probability = float(anisotropic_probability)
        if not 0 <= int(min_lesions) <= int(max_lesions) or int(subsets) < 1:
            raise ValueError(f"need 0 <= min_lesions <= max_lesions and subsets >= 1, got {min_lesions}, "
                             f"{max_lesions}, {subsets}")
        self.min_lesions, self.max_lesions, self.subsets = int(min_lesions), int(max_lesions), int(subsets)
        self.doses = tuple(sorted({float(d) for d in doses}, reverse=True))
        if not self.doses or not all(0 < d <= 1 for d in self.doses):
            raise ValueError(f"doses must be fractions in (0, 1], got {doses}")
        self.centre_jitter_mm = float(centre_jitter_mm)
        self.spatial_kwargs = {k: v for k, v in spatial_kwargs.items()
                               if k not in ("spacing_range", "thick_slice_probability", "thick_range")}
        self._volumes = torch.from_numpy(np.ascontiguousarray(anatomy.maps, dtype=np.float32))
        head = anatomy.maps.sum(0) > 0.5
        if not head.any():
            raise ValueError("the anatomy has no head voxels (tissue maps sum below 0.5 everywhere)")
        self._head_centre = np.argwhere(head).mean(0)

    # -- the random factors -------------------------------------------------------------------

    def _grid(self, rng: np.random.Generator) -> tuple[tuple[float, float, float], tuple[int, int, int]]:
        transaxial = float(rng.uniform(*self.spacing_range))
        axial = float(rng.uniform(*self.spacing_range)) if rng.uniform() < self.anisotropic_probability else transaxial
        spacing = (transaxial, transaxial, axial)
        shape = tuple(max(1, int(round(f / s))) for f, s in zip(self.field_of_view_mm, spacing))
        return spacing, shape  # type: ignore[return-value]

    def _tissues(self, spatial: SpatialDraw, shape: tuple[int, int, int]) -> np.ndarray:
        """Tissue probabilities averaged over each output voxel (``k`` sub-samples per axis)."""
        coords = sampling_coordinates(spatial, shape, self.anatomy.spacing)
        steps = [max(1, min(4, math.ceil(s / a - 1e-6))) for s, a in zip(spatial.spacing, self.anatomy.spacing)]
        offsets = np.stack(np.meshgrid(*[((np.arange(k) + 0.5) / k - 0.5) * s for k, s in zip(steps, spatial.spacing)],
                                       indexing="ij")).reshape(3, -1)
        shifts = (spatial.matrix @ offsets) / np.asarray(self.anatomy.spacing)[:, None]
        total = np.zeros((len(TISSUES), *shape), np.float32)
        for shift in shifts.T:
            total += sample(self._volumes, coords + shift.astype(np.float32).reshape(3, 1, 1, 1))
        total /= shifts.shape[1]
        return np.clip(total, 0.0, 1.0)

    def _lesions(self, rng: np.random.Generator, probs: np.ndarray, spacing: tuple[float, float, float]
                 ) -> tuple[np.ndarray, np.ndarray, tuple[Lesion, ...]]:
        """Coverage-weighted multiplier map, label map and the lesions."""
        shape = probs.shape[1:]
        multiplier = np.ones(shape, np.float32)
        labels = np.zeros(shape, np.int16)
        n = int(rng.integers(self.min_lesions, self.max_lesions + 1))
        candidates = {name: np.argwhere(probs[i] > 0.5) for name, i in (("grey_matter", _GM), ("white_matter", _WM))}
        sp = np.asarray(spacing)
        voxel_mm = float(np.prod(sp) ** (1 / 3))
        lesions: list[Lesion] = []
        for _ in range(50 * max(n, 1)):
            if len(lesions) == n:
                break
            tissue = "grey_matter" if rng.uniform() < 0.5 else "white_matter"
            pool = candidates[tissue]
            diameter = float(rng.uniform(*self.lesion_diameter_mm))
            contrast = float(rng.uniform(*self.lesion_contrast))
            if not len(pool):
                continue
            centre = pool[rng.integers(len(pool))]
            if any(np.linalg.norm((centre - np.asarray(o.centre)) * sp) < (diameter + o.diameter_mm) / 2 + 2.0
                   for o in lesions):
                continue
            radius = diameter / 2
            half = np.ceil((radius + voxel_mm) / sp).astype(int)
            box = tuple(slice(max(int(c - h), 0), min(int(c + h + 1), s)) for c, h, s in zip(centre, half, shape))
            grid = np.meshgrid(*[(np.arange(b.start, b.stop) - c) * s for b, c, s in zip(box, centre, sp)],
                               indexing="ij")
            distance = np.sqrt(sum(g**2 for g in grid))
            coverage = np.clip(0.5 + (radius - distance) / voxel_mm, 0.0, 1.0).astype(np.float32)
            multiplier[box] *= 1 + (contrast - 1) * coverage
            labels[box][coverage >= 0.5] = len(lesions) + 1
            lesions.append(Lesion(tuple(int(c) for c in centre), diameter, contrast, tissue))  # type: ignore[arg-type]
        return multiplier, labels, tuple(lesions)

    def draw(self, rng: np.random.Generator | int, *, simulator: str | None = "osem") -> PetPhantom:
        """One subject; reproducible from ``rng`` (a generator or a seed).

        Args:
            rng: random generator or integer seed.
            simulator: ``osem`` or ``image`` to simulate the scans at ``doses`` (see
                :meth:`simulate`), None for the phantom only.
        """
        rng = _as_rng(rng)
        spacing, shape = self._grid(rng)
        centre = self._head_centre + rng.uniform(-1, 1, 3) * self.centre_jitter_mm / np.asarray(self.anatomy.spacing)
        spatial = replace(draw_spatial(rng, centre, thick_slice_probability=0.0, **self.spatial_kwargs),
                          spacing=spacing)
        probs = self._tissues(spatial, shape)

        gm_suv = float(rng.uniform(*self.gm_suv_range))
        uptake = {
            "grey_matter": gm_suv,
            "white_matter": gm_suv / float(rng.uniform(*self.gm_wm_ratio_range)),
            "csf": gm_suv * float(rng.uniform(0.01, 0.05)),
            "scalp": gm_suv * float(rng.uniform(0.05, 0.15)),
            "skull": gm_suv * float(rng.uniform(0.03, 0.10)),
        }
        regional = float(rng.uniform(0.0, 0.12)) * smooth_field(rng, shape, 4)
        activity = sum(probs[TISSUES.index(t)] * v for t, v in uptake.items())
        activity = activity + probs[_GM] * uptake["grey_matter"] * regional
        multiplier, labels, lesions = self._lesions(rng, probs, spacing)
        activity = np.clip(activity * multiplier, 0.0, None).astype(np.float32)
        mu = sum(probs[TISSUES.index(t)] * v for t, v in MU_PER_CM.items()).astype(np.float32)

        fwhm_t = float(rng.uniform(*self.fwhm_range))
        fwhm_z = float(np.clip(fwhm_t * rng.uniform(0.85, 1.15), *self.fwhm_range))
        fwhm = (fwhm_t, fwhm_t, fwhm_z)
        counts = float(np.exp(rng.uniform(*np.log(self.counts_range))))
        iterations = int(rng.integers(self.iterations_range[0], self.iterations_range[1] + 1))
        post = float(rng.uniform(*self.post_fwhm_range))
        noise_seed = int(rng.integers(2**31 - 1))
        phantom = PetPhantom(
            activity=activity,
            truth=gaussian_blur_mm(activity, fwhm, spacing),
            mu_per_cm=mu,
            brain=(probs[_GM] + probs[_WM] + probs[_CSF]) > 0.5,
            lesions=labels,
            spacing=spacing,
            fwhm_mm=fwhm,
            total_counts=counts,
            iterations=iterations,
            subsets=self.subsets,
            post_fwhm_mm=post,
            uptake=uptake,
            lesion_list=lesions,
            spatial=spatial,
            noise_seed=noise_seed,
        )
        return phantom if simulator is None else self.simulate(phantom, simulator)

    def simulate(self, phantom: PetPhantom, simulator: str = "osem",
                 doses: Sequence[float] | None = None) -> PetPhantom:
        """``phantom`` with its scans at ``doses`` (default the generator's) from ``simulator``."""
        return simulate_phantom(phantom, simulator, self.doses if doses is None else doses)


def simulate_phantom(phantom: PetPhantom, simulator: str = "osem", doses: Sequence[float] = DOSES) -> PetPhantom:
    """A copy of ``phantom`` with scans at ``doses`` from ``simulator`` (``osem`` or ``image``).

    Both use the phantom's counts, resolution, OSEM settings, attenuation and noise seed, so the
    two simulators' scans of one phantom differ only by how the noise is made.
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, got {simulator!r}")
    post = phantom.post_fwhm_mm if phantom.post_fwhm_mm > 0 else None
    if simulator == "osem":
        scanner = phantom.scanner()
        scans = simulate_doses(
            phantom.activity, phantom.spacing, tuple(doses), total_counts=phantom.total_counts,
            mu_map=phantom.mu_per_cm, seed=phantom.noise_seed, iterations=phantom.iterations,
            subsets=min(phantom.subsets, scanner.views), post_fwhm_mm=post, scanner=scanner,
        )
    else:
        scans = image_noise_doses(
            phantom.truth, phantom.spacing, tuple(doses), total_counts=phantom.total_counts,
            mu_per_cm=phantom.mu_per_cm, fwhm_mm=phantom.fwhm_mm, iterations=phantom.iterations,
            subsets=phantom.subsets, post_fwhm_mm=post, seed=phantom.noise_seed,
        )
    return replace(phantom, scans=scans, simulator=simulator)
