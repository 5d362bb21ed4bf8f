"""Where the sliding windows go: per-axis window size and start positions.

Two plans:

* :func:`grid_plan` places windows exactly as MONAI's ``SlidingWindowInferer`` does (interval
  ``int(roi * (1 - overlap))``, last window flush with the far edge), so results match MONAI's.
* :func:`fitted_plan` (the fast mode) covers each axis with the fewest windows no larger than a
  voxel budget allows, overlapping by a fixed margin (at least the network's receptive radius on
  each side), which removes most of the redundant computation of a fixed-size grid.

Windows form a Cartesian grid, so a plan is three lists of starts and one window size.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowPlan:
    """Window size and start positions along each axis of a (padded) volume."""

    shape: tuple[int, ...]
    window: tuple[int, ...]
    starts: tuple[tuple[int, ...], ...]

    def __len__(self) -> int:
        return math.prod(len(s) for s in self.starts)

    def windows(self) -> Iterator[tuple[slice, ...]]:
        """Every window as a tuple of slices, in C order of the start grid."""
        for corner in itertools.product(*self.starts):
            yield tuple(slice(c, c + w) for c, w in zip(corner, self.window))

    @property
    def computed_voxels(self) -> int:
        """Voxels the network evaluates for this plan (redundancy = computed_voxels / volume voxels)."""
        return len(self) * math.prod(self.window)


def _grid_starts(size: int, roi: int, overlap: float) -> tuple[int, ...]:
    interval = roi if roi == size else max(int(roi * (1 - overlap)), 1)
    n = next(i for i in range(size) if i * interval + roi >= size) + 1
    return tuple(i * interval - max(i * interval + roi - size, 0) for i in range(n))


def grid_plan(shape: Sequence[int], roi: Sequence[int], overlap: float) -> WindowPlan:
    """MONAI's window grid for a volume at least ``roi`` large along every axis (pad smaller ones first)."""
    shape, roi = tuple(int(s) for s in shape), tuple(int(r) for r in roi)
    if any(r > s for r, s in zip(roi, shape)):
        raise ValueError(f"volume {shape} is smaller than the window {roi}; pad it first")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    return WindowPlan(shape, roi, tuple(_grid_starts(s, r, overlap) for s, r in zip(shape, roi)))


def _fitted_axis(size: int, max_window: int, margin: int) -> tuple[int, tuple[int, ...]]:
    if size <= max_window:
        return size, (0,)
    step_budget = max_window - margin
    if step_budget <= 0:
        raise ValueError(f"window {max_window} must be larger than the overlap margin {margin}")
    n = math.ceil((size - margin) / step_budget)
    window = math.ceil((size + (n - 1) * margin) / n)
    starts = [round(i * (size - window) / (n - 1)) for i in range(n)]
    return window, tuple(starts)


def fitted_plan(shape: Sequence[int], max_window: Sequence[int], margin: int) -> WindowPlan:
    """Fewest windows of at most ``max_window`` voxels per axis, overlapping by at least ``margin``.

    Windows are equal-sized along an axis and spread evenly, first and last flush with the edges.

    Examples::

        >>> plan = fitted_plan((192, 224, 192), (128, 128, 128), margin=16)
        >>> plan.window, plan.starts
        ((104, 120, 104), ((0, 88), (0, 104), (0, 88)))
    """
    axes = [_fitted_axis(int(s), int(m), int(margin)) for s, m in zip(shape, max_window)]
    return WindowPlan(tuple(int(s) for s in shape), tuple(a[0] for a in axes), tuple(a[1] for a in axes))
