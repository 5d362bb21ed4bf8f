"""Multi-slice 2D parallel-beam projector for PET: one sparse system matrix shared by every slice.

Geometry (one axial slice = the plane of array axes 0 and 1; axis 2 is the scanner axis):

- pixel ``(i, j)`` sits at ``x = (i - (nx - 1) / 2) * sx``, ``y = (j - (ny - 1) / 2) * sy`` (mm);
- view ``k`` of ``n_angles`` looks along the angle ``theta_k = k * pi / n_angles`` (``[0, pi)``);
  its radial coordinate is ``r = x cos(theta) + y sin(theta)``;
- radial bin ``b`` of ``n_bins`` (odd, centred on ``r = 0``) has width ``bin_mm`` and covers the whole
  slice (its half-diagonal), so that no pixel falls outside the field of view.

The matrix is pixel-driven with a box footprint (as distance-driven projectors do): a pixel casts a
shadow of width ``sx |cos(theta)| + sy |sin(theta)|`` centred on its ``r``, and each bin gets the
fraction of the shadow it overlaps, times ``sx * sy / bin_mm``. A sinogram value is therefore the
mean line integral (mm x image units) of the slice over the bin, and the sinogram of one view sums
to ``sx * sy / bin_mm`` times the slice sum: the path length per voxel, summed over the bins, is the
voxel area over the bin width.

The matrix is stored transposed (CSR, pixels x sinogram rows), one block per OSEM subset of
interleaved views (``k = s, s + n_subsets, ...``): back projection is ``block @ sinogram`` and
projection is ``block.T @ image`` (CSC), so projecting a whole volume is one sparse x dense product
of an ``(nx * ny, nz)`` matrix. Matrices are cached in memory per geometry (:func:`parallel_projector`).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import scipy.sparse as sp


class ParallelBeamProjector:
    """Linear operator ``A``: volume ``(nx, ny, nz)`` -> sinogram ``(n_angles, n_bins, nz)``, and ``A^T``.

    Args:
        shape: ``(nx, ny)`` of one axial slice.
        spacing_mm: ``(sx, sy)`` pixel size in mm.
        n_angles: number of views over 180 degrees.
        bin_mm: radial bin width in mm (any; finer than a pixel only costs more non-zeros).
        n_subsets: number of interleaved view subsets (OSEM); 1 for plain projection.
        workers: threads for the sparse products (they release the GIL); columns (slices) are split.

    Examples::

        >>> proj = ParallelBeamProjector((32, 32), (2.0, 2.0), n_angles=48, bin_mm=2.0)
        >>> proj.forward(np.ones((32, 32, 5), np.float32)).shape
        (48, 47, 5)
    """

    def __init__(
        self,
        shape: tuple[int, int],
        spacing_mm: tuple[float, float],
        *,
        n_angles: int,
        bin_mm: float,
        n_subsets: int = 1,
        workers: int = 1,
    ):
        if len(tuple(shape)) != 2 or len(tuple(spacing_mm)) != 2:
            raise ValueError(f"shape and spacing_mm must have 2 entries (one slice), got {shape}, {spacing_mm}")
        nx, ny = (int(s) for s in shape)
        sx, sy = (float(s) for s in spacing_mm)
        if nx < 1 or ny < 1:
            raise ValueError(f"shape must be positive, got {shape}")
        if sx <= 0 or sy <= 0:
            raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
        if not bin_mm > 0:
            raise ValueError(f"bin_mm must be positive, got {bin_mm}")
        if n_angles < 1 or not 1 <= n_subsets <= n_angles:
            raise ValueError(f"need n_angles >= 1 and 1 <= n_subsets <= n_angles, got {n_angles}, {n_subsets}")
        self.shape, self.spacing_mm = (nx, ny), (sx, sy)
        self.n_angles, self.bin_mm, self.n_subsets = int(n_angles), float(bin_mm), int(n_subsets)
        self.workers = max(1, int(workers))
        half_diagonal = math.hypot((nx - 1) * sx, (ny - 1) * sy) / 2
        footprint = math.hypot(sx, sy) / self.bin_mm  # widest pixel shadow, in bins
        self._footprint_bins = math.ceil(footprint) + 1
        self.n_bins = 2 * math.ceil(half_diagonal / self.bin_mm + footprint / 2 + 1) + 1
        self.angles = np.arange(self.n_angles) * np.pi / self.n_angles
        self.subset_views = [np.arange(s, self.n_angles, self.n_subsets) for s in range(self.n_subsets)]
        self._blocks = [self._block(views) for views in self.subset_views]

    @property
    def path_length_per_voxel(self) -> float:
        """Sum over the bins of one view of a voxel's weights: ``sx * sy / bin_mm`` (mm)."""
        return self.spacing_mm[0] * self.spacing_mm[1] / self.bin_mm

    @property
    def nnz(self) -> int:
        return sum(b.nnz for b in self._blocks)

    def _block(self, views: np.ndarray) -> sp.csr_matrix:
        """``A^T`` restricted to ``views``: CSR, one row per pixel, its footprint's bins per view."""
        nx, ny = self.shape
        sx, sy = self.spacing_mm
        x = ((np.arange(nx) - (nx - 1) / 2) * sx)[:, None].repeat(ny, 1).ravel()
        y = ((np.arange(ny) - (ny - 1) / 2) * sy)[None, :].repeat(nx, 0).ravel()
        theta = self.angles[views]
        cos, sin = np.cos(theta), np.sin(theta)
        centre = (np.outer(x, cos) + np.outer(y, sin)) / self.bin_mm + (self.n_bins - 1) / 2
        half = (sx * np.abs(cos) + sy * np.abs(sin)) / (2 * self.bin_mm)  # footprint half-width, bins
        low, high = centre - half, centre + half
        first = np.floor(low + 0.5).astype(np.int32)  # bin b covers [b - 1/2, b + 1/2)
        weight = self.path_length_per_voxel / (2 * half)
        indices = np.empty((*centre.shape, self._footprint_bins), np.int32)
        data = np.empty((*centre.shape, self._footprint_bins), np.float32)
        for k in range(self._footprint_bins):
            b = first + k
            overlap = np.minimum(high, b + 0.5) - np.maximum(low, b - 0.5)
            data[..., k] = np.clip(overlap, 0, None) * weight
            indices[..., k] = b + (np.arange(len(views)) * self.n_bins)[None, :]
        indptr = np.arange(nx * ny + 1, dtype=np.int64) * (self._footprint_bins * len(views))
        shape = (nx * ny, len(views) * self.n_bins)
        block = sp.csr_matrix((data.ravel(), indices.ravel(), indptr), shape=shape)
        block.eliminate_zeros()
        return block

    def _matmul(self, matrix, dense: np.ndarray) -> np.ndarray:
        if self.workers == 1 or dense.shape[1] < 2:
            return np.asarray(matrix @ dense, dtype=np.float32)
        out = np.empty((matrix.shape[0], dense.shape[1]), np.float32)
        chunks = np.array_split(np.arange(dense.shape[1]), min(self.workers, dense.shape[1]))

        def run(cols: np.ndarray) -> None:
            out[:, cols[0] : cols[-1] + 1] = matrix @ np.ascontiguousarray(dense[:, cols[0] : cols[-1] + 1])

        with ThreadPoolExecutor(len(chunks)) as pool:
            list(pool.map(run, chunks))
        return out

    def _as_image(self, volume: np.ndarray) -> np.ndarray:
        v = np.asarray(volume, dtype=np.float32)
        if v.ndim != 3 or v.shape[:2] != self.shape:
            raise ValueError(f"expected a volume of shape {self.shape} + (nz,), got {v.shape}")
        return np.ascontiguousarray(v).reshape(-1, v.shape[2])

    def _as_rows(self, sinogram: np.ndarray, n_views: int) -> np.ndarray:
        s = np.asarray(sinogram, dtype=np.float32)
        if s.ndim != 3 or s.shape[:2] != (n_views, self.n_bins):
            raise ValueError(f"expected a sinogram of shape ({n_views}, {self.n_bins}, nz), got {s.shape}")
        return np.ascontiguousarray(s).reshape(-1, s.shape[2])

    def forward_subset(self, volume: np.ndarray, subset: int) -> np.ndarray:
        """Views ``subset_views[subset]`` of the projection: ``(len(views), n_bins, nz)``."""
        image = self._as_image(volume)
        rows = self._matmul(self._blocks[subset].T, image)
        return rows.reshape(len(self.subset_views[subset]), self.n_bins, image.shape[1])

    def back_subset(self, sinogram: np.ndarray, subset: int) -> np.ndarray:
        """``A_s^T`` of a subset sinogram ``(len(views), n_bins, nz)``: a volume ``(nx, ny, nz)``."""
        rows = self._as_rows(sinogram, len(self.subset_views[subset]))
        return self._matmul(self._blocks[subset], rows).reshape(*self.shape, rows.shape[1])

    def forward(self, volume: np.ndarray) -> np.ndarray:
        """Line integrals of every axial slice: ``(n_angles, n_bins, nz)`` float32 (mm x image units)."""
        nz = np.shape(volume)[2] if np.ndim(volume) == 3 else 0
        out = np.empty((self.n_angles, self.n_bins, nz), np.float32)
        for s, views in enumerate(self.subset_views):
            out[views] = self.forward_subset(volume, s)
        return out

    def back(self, sinogram: np.ndarray) -> np.ndarray:
        """Adjoint of :meth:`forward`: ``(n_angles, n_bins, nz)`` -> ``(nx, ny, nz)`` float32."""
        s = np.asarray(sinogram, dtype=np.float32)
        if s.ndim != 3 or s.shape[0] != self.n_angles:
            raise ValueError(f"expected a sinogram of shape ({self.n_angles}, {self.n_bins}, nz), got {s.shape}")
        out = self.back_subset(s[self.subset_views[0]], 0)
        for sub in range(1, self.n_subsets):
            out += self.back_subset(s[self.subset_views[sub]], sub)
        return out


@lru_cache(maxsize=4)
def parallel_projector(
    shape: tuple[int, int],
    spacing_mm: tuple[float, float],
    n_angles: int,
    bin_mm: float,
    n_subsets: int = 1,
    workers: int = 1,
) -> ParallelBeamProjector:
    """A :class:`ParallelBeamProjector`, cached in memory per geometry (arguments must be hashable)."""
    return ParallelBeamProjector(
        tuple(shape), tuple(spacing_mm), n_angles=n_angles, bin_mm=bin_mm, n_subsets=n_subsets, workers=workers
    )
