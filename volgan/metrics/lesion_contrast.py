"""Lesion contrast for PET: lesion mean over the mean of a shell around it, and its recovery
relative to a reference image (e.g. the full-dose reconstruction)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def lesion_shells(labels: np.ndarray, spacing: Sequence[float], shell_mm: float = 5.0) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """For each lesion label > 0: its voxels and the voxels within ``shell_mm`` of it (in mm, any
    voxel size) that belong to no lesion."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"expected a 3D label map, got shape {labels.shape}")
    if not shell_mm > 0:
        raise ValueError(f"shell_mm must be positive, got {shell_mm}")
    any_lesion = labels > 0
    out = {}
    for label in (int(v) for v in np.unique(labels) if v > 0):
        lesion = labels == label
        distance = ndimage.distance_transform_edt(~lesion, sampling=tuple(float(s) for s in spacing))
        shell = (distance > 0) & (distance <= shell_mm) & ~any_lesion
        if not shell.any():
            raise ValueError(f"lesion {label} has no background voxels within {shell_mm} mm")
        out[label] = (lesion, shell)
    return out


def lesion_contrasts(image: np.ndarray, labels: np.ndarray, spacing: Sequence[float], shell_mm: float = 5.0) -> dict[int, float]:
    """``mean(image in lesion) / mean(image in its shell)`` for each lesion label.

    Examples::

        >>> labels = np.zeros((20, 20, 20), int); labels[8:12, 8:12, 8:12] = 1
        >>> image = np.where(labels > 0, 3.0, 1.0)
        >>> lesion_contrasts(image, labels, (1, 1, 1))
        {1: 3.0}
    """
    image = np.asarray(image, dtype=np.float64)
    if image.shape != np.shape(labels):
        raise ValueError(f"image shape {image.shape} does not match the label map's {np.shape(labels)}")
    out = {}
    for label, (lesion, shell) in lesion_shells(labels, spacing, shell_mm).items():
        background = float(image[shell].mean())
        if background <= 0:
            raise ValueError(f"lesion {label}: the mean of its {shell_mm} mm shell is {background}, not positive")
        out[label] = float(image[lesion].mean()) / background
    return out


def contrast_recovery(image: np.ndarray, reference: np.ndarray, labels: np.ndarray, spacing: Sequence[float],
                      shell_mm: float = 5.0) -> dict[int, float]:
    """Each lesion's contrast in ``image`` relative to its contrast in ``reference`` (1.0: same contrast)."""
    ours = lesion_contrasts(image, labels, spacing, shell_mm)
    ref = lesion_contrasts(reference, labels, spacing, shell_mm)
    return {label: ours[label] / ref[label] for label in ours}
