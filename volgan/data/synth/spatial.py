"""Random geometry of a synthetic subject: affine, smooth deformation, position and voxel grid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SpatialDraw:
    """Where and how a subject's output grid samples the anatomy.

    Attributes:
        matrix: ``(3, 3)`` rotation @ scale @ shear, mapping output mm to anatomy mm.
        centre: anatomy voxel index (float) that the centre of the output grid samples.
        displacement: ``(3, g, g, g)`` smooth displacement control points in mm (anatomy axes),
            upsampled over the output grid.
        spacing: output voxel size in mm.
    """

    matrix: np.ndarray
    centre: np.ndarray
    displacement: np.ndarray
    spacing: tuple[float, float, float]


def rotation(angles_rad: Sequence[float]) -> np.ndarray:
    """Rotation about the x, then y, then z axis."""
    a, b, c = angles_rad
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def draw_spatial(
    rng: np.random.Generator,
    centre: np.ndarray,
    *,
    max_rotation_deg: float = 15.0,
    max_scale: float = 0.15,
    max_shear: float = 0.05,
    deformation_mm: float = 3.0,
    control_points: int = 5,
    spacing_range: tuple[float, float] = (0.8, 1.6),
    thick_slice_probability: float = 0.25,
    thick_range: tuple[float, float] = (1.6, 3.0),
) -> SpatialDraw:
    """A random geometry centred on anatomy voxel ``centre``.

    Rotation up to ``max_rotation_deg`` about each axis, scale ``1 +- max_scale`` per axis, shear
    up to ``max_shear``, a smooth deformation with control-point displacements of standard
    deviation ``deformation_mm``, an isotropic voxel size from ``spacing_range`` and, with
    ``thick_slice_probability``, one axis with slices from ``thick_range`` mm.
    """
    rot = rotation(np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg, 3)))
    scale = np.diag(1.0 + rng.uniform(-max_scale, max_scale, 3))
    shear = np.eye(3)
    shear[np.triu_indices(3, 1)] = rng.uniform(-max_shear, max_shear, 3)
    displacement = rng.normal(0.0, deformation_mm, (3, control_points, control_points, control_points))
    spacing = np.full(3, rng.uniform(*spacing_range))
    if rng.uniform() < thick_slice_probability:
        spacing[rng.integers(3)] = rng.uniform(*thick_range)
    return SpatialDraw(rot @ scale @ shear, np.asarray(centre, dtype=float), displacement,
                       tuple(float(s) for s in spacing))  # type: ignore[arg-type]


def upsampled(coarse: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``(C, *coarse)`` control points interpolated (trilinear, corners aligned) to ``(C, *shape)``."""
    tensor = torch.from_numpy(np.ascontiguousarray(coarse, dtype=np.float32))[None]
    return F.interpolate(tensor, size=tuple(int(n) for n in shape), mode="trilinear", align_corners=True)[0].numpy()


def sampling_coordinates(draw: SpatialDraw, shape: Sequence[int],
                         anatomy_spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """``(3, *shape)`` anatomy voxel indices sampled by each voxel of the output grid."""
    shape = tuple(int(n) for n in shape)
    axes = [(np.arange(n, dtype=np.float32) - (n - 1) / 2) * s for n, s in zip(shape, draw.spacing)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij")).reshape(3, -1)  # output mm about the centre
    mm = (draw.matrix.astype(np.float32) @ grid).reshape(3, *shape)
    mm += upsampled(draw.displacement, shape)
    spacing = np.asarray(anatomy_spacing, dtype=np.float32).reshape(3, 1, 1, 1)
    return mm / spacing + draw.centre.astype(np.float32).reshape(3, 1, 1, 1)
