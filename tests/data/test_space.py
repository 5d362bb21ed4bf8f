"""check_space on real anatomy: what the headers' placement is judged to be."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from tests.brain_case import make_brain_case
from volgan.data.space import MISALIGNED, SAME_GRID, check_space
from volgan.degrade import add_rician_noise
from volgan.io import Volume, read_volume


def mean_head_2mm() -> Volume:
    import pydeface

    img = nib.load(Path(pydeface.__file__).parent / "data" / "mean_reg2mean.nii.gz")
    return Volume(np.asarray(img.dataobj, dtype=np.float32)[::2, ::2, ::2], img.affine @ np.diag([2.0, 2.0, 2.0, 1.0]))


def test_a_noisy_copy_on_the_same_grid_is_not_sent_to_registration():
    """Registering it would interpolate, i.e. denoise, the input of a denoising pair."""
    clean = mean_head_2mm()
    for level in (7.0, 15.0):
        noisy = clean.with_array(add_rician_noise(clean.array, level, seed=3))
        space = check_space(noisy, clean)
        assert space.kind == SAME_GRID and space.nmi_gain_nearby < 0, (level, space)


def test_a_rotation_alone_is_found_although_the_foregrounds_still_overlap(tmp_path):
    case = make_brain_case(tmp_path, angles=(0.0, 0.0, 5.0), shift=(0.0, 0.0, 0.0))
    space = check_space(read_volume(case.source), read_volume(case.target))
    assert space.world.overlap > 0.9  # the foregrounds alone would pass it as aligned
    assert space.kind == MISALIGNED and space.nmi_gain_nearby > 0.01
