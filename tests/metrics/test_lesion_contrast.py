from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from volgan.metrics import contrast_recovery, lesion_contrasts, lesion_shells


def sphere_labels(shape=(40, 40, 30), centres=((12, 12, 10), (28, 26, 18)), radius=3.0, spacing=(1.0, 1.0, 1.0)):
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij"), -1)
    labels = np.zeros(shape, np.int16)
    for i, c in enumerate(centres, start=1):
        labels[np.linalg.norm(grid - np.asarray(c) * np.asarray(spacing), axis=-1) <= radius] = i
    return labels


def test_shell_is_within_the_distance_in_mm_on_anisotropic_voxels():
    spacing = (1.0, 1.0, 2.5)
    labels = sphere_labels(spacing=spacing)
    lesion, shell = lesion_shells(labels, spacing, shell_mm=5.0)[1]
    assert not (shell & lesion).any()
    distance = ndimage.distance_transform_edt(~lesion, sampling=spacing)
    assert distance[shell].max() <= 5.0 and distance[shell].min() > 0
    # the shell reaches 5 mm along z: two slices of 2.5 mm
    zs = np.nonzero(shell.any(axis=(0, 1)))[0]
    lz = np.nonzero(lesion.any(axis=(0, 1)))[0]
    assert zs.max() - lz.max() == 2


def test_contrast_of_piecewise_constant_lesions_is_exact():
    labels = sphere_labels()
    image = np.ones(labels.shape)
    image[labels == 1] = 4.0
    image[labels == 2] = 2.0
    assert lesion_contrasts(image, labels, (1, 1, 1)) == pytest.approx({1: 4.0, 2: 2.0})


def test_blurring_lowers_recovery_and_the_reference_itself_recovers_fully():
    labels = sphere_labels()
    image = np.where(labels > 0, 4.0, 1.0)
    blurred = ndimage.gaussian_filter(image, 2.0)
    recovery = contrast_recovery(blurred, image, labels, (1, 1, 1))
    assert all(0.3 < r < 0.9 for r in recovery.values())
    assert contrast_recovery(image, image, labels, (1, 1, 1)) == pytest.approx({1: 1.0, 2: 1.0})


def test_bad_inputs_are_refused():
    labels = sphere_labels()
    with pytest.raises(ValueError, match="does not match"):
        lesion_contrasts(np.ones((4, 4, 4)), labels, (1, 1, 1))
    with pytest.raises(ValueError, match="not positive"):
        lesion_contrasts(np.zeros(labels.shape), labels, (1, 1, 1))
    with pytest.raises(ValueError, match="positive"):
        lesion_shells(labels, (1, 1, 1), shell_mm=0)
