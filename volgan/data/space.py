"""Do two volumes share a grid, a world frame, or neither? (``PairedSubject.check_space``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

from volgan.data.quality import AlignmentScore, alignment_score, foregrounds, score_step
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
    headers alone; ``centroid_mm`` is the distance between the two foregrounds' centres.
    """

    kind: str
    same_shape: bool
    same_spacing: bool
    same_direction: bool
    same_origin: bool
    world: AlignmentScore
    centroid_mm: float

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


def centroid_distance(voxel_to_mm: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Distance in mm between the centres of two masks on one grid (``voxel_to_mm``: 3x3 matrix)."""
    if not (np.any(a) and np.any(b)):
        return float("inf")
    centres = [voxel_to_mm @ np.argwhere(m).mean(0) for m in (a, b)]
    return float(np.linalg.norm(centres[0] - centres[1]))


def check_space(source: Volume, target: Volume, *, min_overlap: float = 0.85, max_centroid_mm: float = 3.0,
                atol: float = 1e-3) -> SpaceCheck:
    """Compare geometry, then judge alignment by the headers: foreground Dice of at least
    ``min_overlap`` and centres within ``max_centroid_mm`` mean the pair is aligned."""
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
    sub = tuple(slice(None, None, k) for k in step)
    fg_target, fg_source = foregrounds(target.array[sub], moved.array[sub], inside[sub])
    centroid = centroid_distance(target.affine[:3, :3] @ np.diag(step), fg_target & inside[sub], fg_source)
    aligned = score.overlap >= min_overlap and centroid <= max_centroid_mm
    kind = MISALIGNED if not aligned else SAME_GRID if all(same.values()) else SAME_WORLD
    return SpaceCheck(kind=kind, world=score, centroid_mm=centroid, **same)
