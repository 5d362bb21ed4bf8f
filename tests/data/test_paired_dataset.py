"""Paired patch sampling: identical crops and augmentation on both sides, foreground weighting, caching."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from monai.data import DataLoader

from tests.conftest import oblique_affine, phantom
from volgan.data import PairedSubject, paired_dataset, patch_transforms


@pytest.fixture
def pair_files(tmp_path):
    """Target phantom and source = 2 x target + 5 on the same grid."""
    target = phantom((40, 44, 36), seed=1)
    affine = oblique_affine()
    nib.save(nib.Nifti1Image(target.astype(np.float32), affine), tmp_path / "target.nii.gz")
    nib.save(nib.Nifti1Image((2 * target + 5).astype(np.float32), affine), tmp_path / "source.nii.gz")
    return tmp_path / "source.nii.gz", tmp_path / "target.nii.gz", target


def test_patches_and_augmentation_are_identical_on_source_target_and_mask(tmp_path):
    """The target encodes each voxel's index (x + 100 y + 10000 z), so a patch tells where it came
    from and how it was flipped or rotated; the source is 2 x target + 5 and the mask a cube."""
    x, y, z = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in (30, 32, 20)), indexing="ij")
    target = 100 + x + 100 * y + 10000 * z
    mask = np.zeros(target.shape, np.float32)
    mask[8:22, 8:24, 5:15] = 1
    for name, array in (("target", target), ("source", 2 * target + 5), ("mask", mask)):
        nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / f"{name}.nii.gz")
    pair = PairedSubject("a", *(str(tmp_path / f"{n}.nii.gz") for n in ("source", "target", "mask")), align="world")
    ds = paired_dataset([pair], patch_transforms((6, 6, 4), num_samples=16, rotate_in_plane=True))
    steps = set()
    for _ in range(3):
        for patch in ds[0]:
            s, t, m = (np.asarray(patch[k])[0] for k in ("source", "target", "mask"))
            assert s.shape == t.shape == m.shape == (6, 6, 4)
            np.testing.assert_allclose(s, 2 * t + 5, rtol=1e-6)
            index = np.round(t - 100).astype(int)
            np.testing.assert_array_equal(m, mask[index % 100, index // 100 % 100, index // 10000])
            steps.add(int(round(t[1, 0, 0] - t[0, 0, 0])))
    assert steps == {1, -1, 100, -100}  # unflipped, flipped and rotated patches all seen


def test_patches_are_centred_on_the_foreground(pair_files):
    source, target, array = pair_files
    ds = paired_dataset([PairedSubject("a", str(source), str(target))], patch_transforms((8, 8, 8), num_samples=40, pos=9, neg=1, flips=False))
    centres_inside = [float(np.asarray(p["mask"])[0, 4, 4, 4]) for p in ds[0]]
    assert np.mean(centres_inside) >= 0.75  # ~90 % expected; the foreground is ~40 % of the volume
    assert (array > 30).mean() < 0.5


def test_a_persistent_dataset_aligns_once_and_survives_the_files(pair_files, tmp_path):
    source, target, _ = pair_files
    pairs = [PairedSubject("a", str(source), str(target))]
    first = paired_dataset(pairs, patch_transforms((8, 8, 8), num_samples=2), cache_dir=tmp_path / "persist")
    assert next(iter(DataLoader(first, batch_size=1)))["source"].shape == (2, 1, 8, 8, 8)
    source.unlink()
    target.unlink()  # nothing left to read or register: the second dataset must use the cache
    second = paired_dataset(pairs, patch_transforms((8, 8, 8), num_samples=2), cache_dir=tmp_path / "persist")
    assert np.asarray(second[0][0]["source"]).shape == (1, 8, 8, 8)
    assert second[0][0]["classification"] == "same_grid"


def test_mask_labels_are_kept_so_rare_regions_can_be_oversampled(pair_files, tmp_path):
    """A manifest mask with 1 = brain and 2 = a small lesion: the labels survive loading (on its own
    grid and resampled), and a label-class sampler centres the asked share of patches on the lesion."""
    from monai.transforms import RandCropByLabelClassesd

    source, target, array = pair_files
    labels = (array > 30).astype(np.float32)
    labels[18:21, 20:23, 16:19] = 2.0  # 27 of ~64,000 voxels
    affine = oblique_affine()
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "labels.nii.gz")
    crop = RandCropByLabelClassesd(keys=["source", "target", "mask"], label_key="mask", spatial_size=(5, 5, 5),
                                   num_classes=3, ratios=[0, 1, 1], num_samples=200)
    ds = paired_dataset([PairedSubject("a", str(source), str(target), str(tmp_path / "labels.nii.gz"))], [crop])
    centres = [float(np.asarray(p["mask"])[0, 2, 2, 2]) for p in ds[0]]
    assert set(centres) <= {1.0, 2.0}
    assert 0.35 < centres.count(2.0) / len(centres) < 0.65
    # a mask on another grid is resampled with nearest neighbours: labels stay labels
    shifted = affine.copy()
    shifted[:3, 3] += 0.4
    nib.save(nib.Nifti1Image(labels, shifted), tmp_path / "labels_moved.nii.gz")
    pair = PairedSubject("b", str(source), str(target), str(tmp_path / "labels_moved.nii.gz")).aligned()
    assert set(np.unique(pair.mask.array)) == {0.0, 1.0, 2.0}
