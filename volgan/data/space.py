"""Do two volumes share a grid, a world frame, or neither? (``PairedSubject.check_space``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from volgan.data.foreground import foreground
from volgan.data.quality import AlignmentScore, alignment_score, normalised_mutual_information, score_step
from volgan.data.sitk_image import sitk_to_volume, volume_to_sitk
from volgan.io.volume import Volume

SAME_GRID = "same_grid"
SAME_WORLD = "same_world"
MISALIGNED = "misaligned"


@dataclass(frozen=True)
class SpaceCheck:
    """Geometry comparison of a source with its target, and how well they match as the headers place them.

    ``kind`` is :data:`SAME_GRID` (nothing to do), :data:`SAME_WORLD` (resample in world space onto
    the target grid) or :data:`MISALIGNED` (register). ``world`` scores the source resampled by the
    headers alone; ``nmi_gain_nearby`` is what the best small rigid move would add to its NMI.
    """

    kind: str
    same_shape: bool
    same_spacing: bool
    same_direction: bool
    same_origin: bool
    world: AlignmentScore
    nmi_gain_nearby: float

    @property
    def same_geometry(self) -> bool:
        return self.same_shape and self.same_spacing and self.same_direction and self.same_origin

    def as_dict(self) -> dict:
        d = asdict(self)
        d["world"] = self.world.as_dict()
        return d


def _direction(v: Volume) -> np.ndarray:
    return v.affine[:3, :3] / np.linalg.norm(v.affine[:3, :3], axis=0)


def resample_onto(source: Volume, target: Volume, transform: sitk.Transform | None = None, *,
                  nearest: bool = False) -> tuple[Volume, np.ndarray]:
    """``source`` on ``target``'s grid (world space, through ``transform`` if given: target point ->
    source point) and the boolean mask of target voxels inside the source's field of view."""
    reference = volume_to_sitk(target)
    transform = transform or sitk.Transform(3, sitk.sitkIdentity)
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    moved = sitk.Resample(volume_to_sitk(source), reference, transform, interp, 0.0, sitk.sitkFloat32)
    ones = volume_to_sitk(source.with_array(np.ones(source.shape, np.float32)))
    inside = sitk.Resample(ones, reference, transform, sitk.sitkNearestNeighbor, 0.0, sitk.sitkFloat32)
    out = sitk_to_volume(moved, like=source, path=source.path)
    return out, sitk_to_volume(inside).array > 0.5


def _probes(centre: np.ndarray, mm: float, degrees: float) -> list[sitk.Transform]:
    """Small rigid moves about ``centre`` (LPS): shifts of +-``mm`` and rotations of +-``degrees`` per axis."""
    probes = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            shift = np.zeros(3)
            shift[axis] = sign * mm
            angles = np.zeros(3)
            angles[axis] = sign * np.deg2rad(degrees)
            for angle, move in ((np.zeros(3), shift), (angles, np.zeros(3))):
                t = sitk.Euler3DTransform()
                t.SetCenter(tuple(float(c) for c in centre))
                t.SetRotation(*(float(a) for a in angle))
                t.SetTranslation(tuple(float(v) for v in move))
                probes.append(t)
    return probes


def nmi_gain_nearby(source: Volume, target: Volume, step: tuple[int, ...],
                    moves: tuple[tuple[float, float], ...] = ((3.0, 3.0), (10.0, 8.0))) -> float:
    """How much normalised mutual information the best rigid move of the source gains over the
    headers' placement (on every ``step``-th target voxel, inside the target's foreground). The
    moves are shifts of +-mm and rotations of +-degrees about each axis, for each ``(mm, degrees)``.

    Contrast-agnostic test of alignment: for an aligned pair the headers' placement is the peak and
    every move loses (negative gain); for a misaligned one some move gains.
    """
    sub = tuple(slice(None, None, k) for k in step)
    sigma_mm = float(np.mean(np.multiply(step, target.spacing)))  # both blurred alike: interpolation must not denoise
    fixed = ndimage.gaussian_filter(target.array, [sigma_mm / s for s in target.spacing])[sub]
    reference = volume_to_sitk(target.with_array(fixed, affine=target.affine @ np.diag([*step, 1.0])))
    mask = ndimage.binary_dilation(foreground(fixed), iterations=2)
    image = sitk.SmoothingRecursiveGaussian(volume_to_sitk(source), sigma_mm)
    centre = np.asarray(reference.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in reference.GetSize()]))

    def nmi(transform: sitk.Transform) -> float:
        moved = sitk_to_volume(sitk.Resample(image, reference, transform, sitk.sitkLinear, 0.0)).array
        return normalised_mutual_information(fixed, moved, mask)

    at_headers = nmi(sitk.Transform(3, sitk.sitkIdentity))
    return max(nmi(t) for mm, degrees in moves for t in _probes(centre, mm, degrees)) - at_headers


def check_space(source: Volume, target: Volume, *, min_overlap: float = 0.9, atol: float = 1e-3) -> SpaceCheck:
    """Compare geometry, then judge whether the headers align the pair: no small rigid move may
    raise their normalised mutual information, and the foregrounds' Dice must reach ``min_overlap``."""
    same = dict(
        same_shape=source.shape == target.shape,
        same_spacing=bool(np.allclose(source.spacing, target.spacing, atol=atol)),
        same_direction=bool(np.allclose(_direction(source), _direction(target), atol=atol)),
        same_origin=bool(np.allclose(source.affine[:3, 3], target.affine[:3, 3], atol=atol)),
    )
    if all(same.values()):
        moved, inside = source, np.ones(target.shape, bool)
    else:
        moved, inside = resample_onto(source, target)
    step = score_step(target.spacing)
    score = alignment_score(target.array, moved.array, inside, step)
    gain = nmi_gain_nearby(source, target, step) if score.coverage > 0 else float("nan")
    aligned = score.overlap >= min_overlap and gain <= 0
    kind = MISALIGNED if not aligned else SAME_GRID if all(same.values()) else SAME_WORLD
    return SpaceCheck(kind=kind, world=score, nmi_gain_nearby=gain, **same)
