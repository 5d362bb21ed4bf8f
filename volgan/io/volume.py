"""The in-memory volume: voxel array plus the geometry and units needed to write it back."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass
class Volume:
    """A 3D image with its world geometry.

    Attributes:
        array: voxel values, shape ``(X, Y, Z)`` in the file's index order (NIfTI convention).
        affine: 4x4 voxel-to-world matrix in RAS+ millimetres (nibabel's convention).
        path: where the volume was read from ("" for a volume made in memory).
        units: physical unit of the values (e.g. ``"a.u."``, ``"SUV"``, ``"Bq/ml"``, ``"HU"``).
        dtype: the on-disk data type of the source, kept so callers can choose to write it back.
        meta: free-form extra metadata from the reader (DICOM tags, NIfTI description...).
    """

    array: np.ndarray
    affine: np.ndarray
    path: str = ""
    units: str = "a.u."
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    def with_array(self, array: np.ndarray, **changes) -> "Volume":
        """A copy on the same grid with new voxel values (and optionally other fields changed)."""
        if tuple(array.shape) != self.shape and "affine" not in changes:
            raise ValueError(f"new array shape {array.shape} does not match the grid {self.shape}")
        return replace(self, array=array, **changes)
