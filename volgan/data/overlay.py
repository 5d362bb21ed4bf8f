"""A PNG to judge a pair's alignment by eye: target in grey, source in colour, three mid slices."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from volgan.io.volume import Volume


def _canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The array reoriented to the closest RAS+ axes, and its voxel sizes in that order."""
    ornt = nib.orientations.io_orientation(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)[ornt[:, 0].astype(int).argsort()]
    return nib.orientations.apply_orientation(array, ornt), spacing


def _window(array: np.ndarray, low: float = 1.0, high: float = 99.5) -> np.ndarray:
    lo, hi = np.percentile(array, [low, high])
    return np.clip((array - lo) / max(hi - lo, 1e-6), 0, 1)


def _row(axes, tgt: np.ndarray, src: np.ndarray, spacing: np.ndarray, label: str) -> None:
    from matplotlib import colormaps

    centre = [n // 2 for n in tgt.shape]
    views = [("sagittal", 0, (1, 2)), ("coronal", 1, (0, 2)), ("axial", 2, (0, 1))]
    for ax, (name, axis, (h, v)) in zip(axes, views):
        t = np.take(tgt, centre[axis], axis=axis).T
        s = np.take(src, centre[axis], axis=axis).T
        colour = colormaps["hot"](s)
        colour[..., 3] = 0.7 * s  # bright source opaque, background transparent
        aspect = spacing[v] / spacing[h]
        ax.imshow(t, cmap="gray", origin="lower", aspect=aspect, vmin=0, vmax=1)
        ax.imshow(colour, origin="lower", aspect=aspect)
        ax.set_title(f"{label}{name}", color="white", fontsize=10)
        ax.axis("off")


def write_overlay(target: Volume, source: Volume, path: str | os.PathLike, title: str = "",
                  before: Volume | None = None) -> Path:
    """Write a PNG of ``source`` (on ``target``'s grid) in colour over ``target`` in grey: sagittal,
    coronal and axial slices through the middle of the target, in neurological convention (the
    subject's right on the right). With ``before`` (the source placed by its header alone), a first
    row shows the pair before registration."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    tgt, spacing = _canonical(_window(target.array), target.affine)
    rows = [("", source)] if before is None else [("before: ", before), ("after: ", source)]
    fig, axes = plt.subplots(len(rows), 3, figsize=(12, 4.2 * len(rows)), facecolor="black", squeeze=False)
    for row, (label, volume) in zip(axes, rows):
        _row(row, tgt, _canonical(_window(volume.array), target.affine)[0], spacing, label)
    fig.suptitle(title, color="white", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, facecolor="black")
    plt.close(fig)
    return path
