"""Conversion between :class:`~volgan.io.Volume` (XYZ array, RAS+ affine) and SimpleITK images (LPS)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from volgan.io.dicom import sitk_to_affine, sitk_to_array
from volgan.io.volume import Volume

_LPS = np.diag([-1.0, -1.0, 1.0])


def array_to_sitk(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """SimpleITK image from an ``(X, Y, Z)`` array and its RAS+ affine (inverse of volgan.io's DICOM reader)."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = _LPS @ affine[:3, :3] @ np.diag(1.0 / spacing)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    image.SetOrigin(tuple(float(v) for v in _LPS @ affine[:3, 3]))
    return image


def volume_to_sitk(volume: Volume) -> sitk.Image:
    """The volume as a float32 SimpleITK image in world (LPS) coordinates."""
    return array_to_sitk(np.asarray(volume.array, dtype=np.float32), volume.affine)


def sitk_to_volume(image: sitk.Image, like: Volume | None = None, **changes) -> Volume:
    """A Volume from a SimpleITK image, keeping ``like``'s units and metadata when given."""
    fields = {"units": like.units, "meta": dict(like.meta)} if like is not None else {}
    fields.update(changes)
    return Volume(array=sitk_to_array(image).astype(np.float32), affine=sitk_to_affine(image), **fields)
