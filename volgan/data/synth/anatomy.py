"""Tissue probability maps on one 1 mm grid: the anatomy every synthetic subject is drawn from."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

# the soft tissue classes, in the order of TissueAnatomy.maps; background is 1 - their sum
TISSUES: tuple[str, ...] = ("grey_matter", "white_matter", "csf", "scalp", "skull")


@dataclass(frozen=True)
class TissueAnatomy:
    """Soft tissue maps and a real T1 intensity on one grid.

    Attributes:
        maps: ``(len(TISSUES), X, Y, Z)`` float32 probabilities, summing to at most 1 per voxel.
        template: ``(X, Y, Z)`` float32 T1-weighted intensity of the same anatomy in [0, 1] (used by
            the ``template`` contrast, which keeps real anatomical texture).
        spacing: voxel size of the grid in mm.
        source: where the maps came from, for model cards.
    """

    maps: np.ndarray
    template: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    source: str = ""

    def __post_init__(self) -> None:
        if self.maps.ndim != 4 or self.maps.shape[0] != len(TISSUES):
            raise ValueError(f"maps must be ({len(TISSUES)}, X, Y, Z), got {self.maps.shape}")
        if self.template.shape != self.maps.shape[1:]:
            raise ValueError(f"template shape {self.template.shape} differs from the maps' {self.maps.shape[1:]}")
        total = self.maps.sum(0)
        if float(self.maps.min()) < -1e-4 or float(total.max()) > 1.0 + 1e-3:
            raise ValueError("tissue maps must be probabilities in [0, 1] summing to at most 1")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.maps.shape[1:])  # type: ignore[return-value]

    @cached_property
    def volumes(self) -> torch.Tensor:
        """``(len(TISSUES) + 1, X, Y, Z)``: the maps and the template in one tensor, for sampling
        (made once and shared by every generator drawing from this anatomy)."""
        return torch.from_numpy(np.concatenate([self.maps, self.template[None]]))

    def head_voxels(self, threshold: float = 0.5) -> np.ndarray:
        """``(N, 3)`` indices of voxels that are mostly head (any tissue), for choosing positions."""
        return np.argwhere(self.maps.sum(0) > threshold)

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, maps=self.maps.astype(np.float16), template=self.template.astype(np.float16),
                            spacing=np.asarray(self.spacing), source=np.asarray(self.source))

    @classmethod
    def load(cls, path: str | Path) -> "TissueAnatomy":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as f:
                return cls(
                    maps=f["maps"].astype(np.float32),
                    template=f["template"].astype(np.float32),
                    spacing=tuple(float(s) for s in f["spacing"]),  # type: ignore[arg-type]
                    source=str(f["source"]),
                )
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"{path}: not a tissue anatomy file ({err}); build it with "
                             "data_scripts/make_synth_anatomy.py") from err
