"""One training pair (source, target, optional mask) and how to bring it onto the target's grid."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from volgan.data.quality import AlignmentScore, alignment_score, score_step
from volgan.data.registration import coarsened, register
from volgan.data.sitk_image import volume_to_sitk
from volgan.data.space import MISALIGNED, SAME_GRID, SAME_WORLD, SpaceCheck, check_space, resample_onto
from volgan.data.transform_cache import TransformCache
from volgan.io import Volume, read_volume

log = logging.getLogger(__name__)
ALIGN_MODES = ("auto", "world", "register")


class PairError(ValueError):
    """A pair that cannot be used; the message names the subject, both files and what to do."""


class RegistrationQualityError(PairError):
    """A registration that scored below the thresholds; ``pair`` holds the result for inspection."""

    def __init__(self, message: str, pair: "AlignedPair"):
        super().__init__(message)
        self.pair = pair


@dataclass(frozen=True)
class AlignSettings:
    """Thresholds and registration settings.

    ``aligned_overlap``: least foreground Dice for the headers alone to count as aligned (they must
    also be the peak of NMI among small rigid moves, see :func:`volgan.data.space.nmi_gain_nearby`);
    ``min_coverage``: least fraction of the target's foreground inside the source's field of view;
    ``min_nmi``/``min_overlap``: least normalised mutual information and foreground Dice after
    registration (NMI is 1 for unrelated images; aligned MR-PET scores about 1.09).
    ``pyramid_mm``: voxel size of each registration level (finer target grids are shrunk to it,
    smoothed by half of it); a 2 mm finest level keeps 1 mm brains fast and sub-millimetre accurate.
    """

    kind: str = "rigid"
    pyramid_mm: tuple[float, ...] = (8.0, 4.0, 2.0)
    aligned_overlap: float = 0.9
    min_coverage: float = 0.2
    min_nmi: float = 1.05
    min_overlap: float = 0.9
    iterations: int = 200
    sampling_fraction: float = 0.05
    seed: int = 0

    def registration(self) -> dict:
        """The settings that change a registration's result (part of the cache key)."""
        return {"kind": self.kind, "pyramid_mm": list(self.pyramid_mm),
                "iterations": self.iterations, "sampling_fraction": self.sampling_fraction, "seed": self.seed}


@dataclass
class AlignedPair:
    """Source (and mask) on the target's grid, with how they got there and how well they match."""

    subject: str
    source: Volume
    target: Volume
    mask: Volume | None
    inside: np.ndarray
    space: SpaceCheck
    score: AlignmentScore
    transform: sitk.Transform | None = None
    from_cache: bool = False
    seconds: float = 0.0

    def transform_parameters(self) -> list[float]:
        return [] if self.transform is None else [float(v) for v in self.transform.GetParameters()]


@dataclass
class PairedSubject:
    """A subject's ``source`` and ``target`` volumes (NIfTI files or DICOM series folders) and an
    optional ``mask`` in the target's space. ``align``: ``auto`` (decide from the images),
    ``world`` (trust the headers: never register) or ``register`` (always register)."""

    subject: str
    source: str
    target: str
    mask: str | None = None
    align: str = "auto"
    _volumes: dict = field(default_factory=dict, repr=False, compare=False)

    def volume(self, role: str) -> Volume:
        """The ``source``, ``target`` or ``mask`` volume, read once."""
        if role not in self._volumes:
            self._volumes[role] = read_volume(getattr(self, role), check=role != "mask")
        return self._volumes[role]

    def _names(self) -> str:
        return f"source {self.source} and target {self.target}"

    def check_space(self, settings: AlignSettings = AlignSettings()) -> SpaceCheck:
        """Classify the pair as same grid, same world (other grid) or misaligned.

        Raises:
            PairError: if the source's field of view misses the target's foreground (unless
                ``align="register"``, which starts registration from the centres of mass).
        """
        if self.align not in ALIGN_MODES:
            raise PairError(f"{self.subject}: align must be one of {ALIGN_MODES}, got {self.align!r}")
        source, target = self.volume("source"), self.volume("target")
        space = check_space(source, target, min_overlap=settings.aligned_overlap)
        if space.world.coverage < settings.min_coverage and self.align != "register":
            centres = [v.affine @ np.r_[(np.asarray(v.shape) - 1) / 2, 1.0] for v in (source, target)]
            raise PairError(
                f"{self.subject}: {self._names()} do not overlap in world space: "
                f"{space.world.coverage:.0%} of the target's foreground lies inside the source's field of view "
                f"(needs {settings.min_coverage:.0%}); their centres are {np.linalg.norm(centres[0] - centres[1]):.0f} mm "
                f"apart (source at {np.round(centres[0][:3], 1).tolist()}, target at {np.round(centres[1][:3], 1).tolist()} "
                "mm, RAS). Check that both are of the same subject and session and that the headers' origin and "
                "direction are right; if the headers are known to be in unrelated frames, set align=register for "
                "this pair in the manifest to register from the images' centres of mass."
            )
        if self.align == "world":
            return dataclasses.replace(space, kind=SAME_GRID if space.same_geometry else SAME_WORLD)
        if self.align == "register":
            return dataclasses.replace(space, kind=MISALIGNED)
        return space

    def aligned(self, settings: AlignSettings = AlignSettings(), cache: TransformCache | None = None) -> AlignedPair:
        """The source (and mask) on the target grid: as is, resampled in world space, or registered.

        Raises:
            PairError: no usable overlap (see :meth:`check_space`).
            RegistrationQualityError: a registration that scores below the thresholds.
        """
        start = time.perf_counter()
        space = self.check_space(settings)
        source, target = self.volume("source"), self.volume("target")
        transform, from_cache = None, False
        if space.kind == SAME_GRID:
            moved, inside = source, np.ones(target.shape, bool)
        elif space.kind == SAME_WORLD:
            moved, inside = resample_onto(source, target)
        else:
            init = "headers" if space.world.coverage >= settings.min_coverage else "moments"
            transform, from_cache = self._registration(settings, init, cache)
            moved, inside = resample_onto(source, target, transform)
        score = alignment_score(target.array, moved.array, inside, score_step(target.spacing))
        pair = AlignedPair(subject=self.subject, source=moved, target=target, mask=self._mask_on(target), inside=inside,
                           space=space, score=score, transform=transform, from_cache=from_cache)
        pair.seconds = time.perf_counter() - start
        if transform is not None:
            self._check_quality(pair, settings)
        return pair

    def _registration(self, settings: AlignSettings, init: str, cache: TransformCache | None) -> tuple[sitk.Transform, bool]:
        params = {**settings.registration(), "init": init}
        key = cache.key(self.source, self.target, params) if cache is not None else ""
        cached = cache.load(key) if cache is not None else None
        if cached is not None:
            log.info("%s: reusing the cached transform %s", self.subject, cache.path(key))
            return cached, True
        fixed, moving = (coarsened(volume_to_sitk(self.volume(r)), settings.pyramid_mm[-1]) for r in ("target", "source"))
        finest, smallest = min(fixed.GetSpacing()), min(fixed.GetSize())
        try:
            result = register(
                fixed, moving, kind=settings.kind,
                shrink_factors=tuple(max(1, min(int(round(mm / finest)), smallest // 8)) for mm in settings.pyramid_mm),
                smoothing_sigmas=tuple(mm / 2 for mm in settings.pyramid_mm),
                iterations=settings.iterations, sampling_fraction=settings.sampling_fraction, seed=settings.seed, init=init,
            )
        except RuntimeError as err:
            reason = str(err).strip().splitlines()[-1]
            raise PairError(f"{self.subject}: registration of {self._names()} failed in SimpleITK ({reason})") from err
        if cache is not None:
            cache.save(key, result.transform, {"subject": self.subject, "source": os.path.abspath(self.source),
                                               "target": os.path.abspath(self.target), "settings": params,
                                               "mattes_mi": result.metric})
        return result.transform, False

    def _mask_on(self, target: Volume) -> Volume | None:
        if not self.mask:
            return None
        # labels are kept (rounded; 0 outside): a mask may mark regions to sample more often (e.g. 2 = lesion)
        mask = self.volume("mask")
        if not (mask.shape == target.shape and np.allclose(mask.affine, target.affine, atol=1e-3)):
            mask, _ = resample_onto(mask, target, nearest=True)
        return mask.with_array(np.rint(np.clip(mask.array, 0, None)).astype(np.float32))

    def _check_quality(self, pair: AlignedPair, settings: AlignSettings) -> None:
        before, after = pair.space.world, pair.score
        problems = []
        if not after.nmi >= settings.min_nmi:
            problems.append(f"normalised mutual information {after.nmi:.3f} < threshold {settings.min_nmi:.3f}")
        if not after.overlap >= settings.min_overlap:
            problems.append(f"foreground overlap (Dice) {after.overlap:.3f} < threshold {settings.min_overlap:.3f}")
        if np.isfinite(before.nmi) and after.nmi < before.nmi - 1e-3:
            problems.append(f"normalised mutual information fell from {before.nmi:.3f} (headers) to {after.nmi:.3f}")
        if problems:
            raise RegistrationQualityError(
                f"{self.subject}: registration of {self._names()} failed the quality check: " + "; ".join(problems)
                + f" (NMI before {before.nmi:.3f}, overlap before {before.overlap:.3f}). Look at the overlay from "
                "`volgan pairs check`; try kind=affine, fix the headers, or lower the thresholds if this contrast "
                "pair scores low even when aligned.",
                pair,
            )
