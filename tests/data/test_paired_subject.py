"""Alignment of real-anatomy pairs (see conftest.brain_case): classification, registration, cache, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from volgan.data.paired_subject import AlignSettings, PairedSubject, PairError, RegistrationQualityError
from volgan.data.simulate import target_registration_error
from volgan.data.space import MISALIGNED, SAME_GRID, SAME_WORLD
from volgan.data.transform_cache import TransformCache
from volgan.io import read_volume, write_nifti


def test_the_source_is_on_another_grid_with_a_flipped_direction(brain_case):
    source, target = read_volume(brain_case.source), read_volume(brain_case.target)
    assert source.spacing == pytest.approx((2.0, 2.0, 3.0))
    assert np.linalg.det(source.affine[:3, :3]) * np.linalg.det(target.affine[:3, :3]) < 0
    assert not np.allclose(source.affine[:3, 3], target.affine[:3, 3], atol=5)
    angle = np.rad2deg(np.arccos((np.trace(np.asarray(brain_case.truth.GetMatrix()).reshape(3, 3)) - 1) / 2))
    assert 5 <= angle <= 15 and 5 <= np.linalg.norm(brain_case.truth.GetTranslation()) <= 20


@pytest.fixture(scope="module")
def registered(brain_case, tmp_path_factory):
    cache = TransformCache(tmp_path_factory.mktemp("transforms"))
    pair = PairedSubject("moved", str(brain_case.source), str(brain_case.target)).aligned(cache=cache)
    return pair, cache


def test_registration_recovers_a_known_rigid_motion_across_contrast_and_grid(brain_case, registered):
    pair, _ = registered
    assert pair.space.kind == MISALIGNED and pair.transform is not None and not pair.from_cache
    tre = target_registration_error(pair.transform, brain_case.truth, brain_case.landmarks)
    headers_only = target_registration_error(sitk.Transform(3, sitk.sitkIdentity), brain_case.truth, brain_case.landmarks)
    print(f"TRE over {len(tre)} brain landmarks: mean {tre.mean():.2f} mm, max {tre.max():.2f} mm "
          f"(headers alone: mean {headers_only.mean():.1f} mm)")
    assert headers_only.min() > 5.0
    assert tre.max() < 2.0
    assert pair.score.nmi > pair.space.world.nmi + 0.05
    assert pair.source.shape == pair.target.shape and np.allclose(pair.source.affine, pair.target.affine)


def test_a_cached_transform_is_reused_not_recomputed(brain_case, registered):
    first, cache = registered
    (tfm,) = cache.folder.glob("*.tfm")
    again = PairedSubject("moved", str(brain_case.source), str(brain_case.target)).aligned(cache=cache)
    assert again.from_cache
    np.testing.assert_allclose(again.transform_parameters(), first.transform_parameters())
    # the cache file is what is used: nudge it by 0.5 mm and the next alignment follows
    nudged = sitk.Euler3DTransform(sitk.ReadTransform(str(tfm)))
    nudged.SetTranslation(np.add(nudged.GetTranslation(), (0.5, 0.0, 0.0)).tolist())
    sitk.WriteTransform(nudged, str(tfm))
    third = PairedSubject("moved", str(brain_case.source), str(brain_case.target)).aligned(cache=cache)
    point = tuple(brain_case.landmarks[0])
    shift = np.subtract(third.transform.TransformPoint(point), first.transform.TransformPoint(point))
    np.testing.assert_allclose(shift, (0.5, 0.0, 0.0), atol=1e-6)
    sitk.WriteTransform(first.transform, str(tfm))


def test_the_cache_key_follows_content_not_names(brain_case, tmp_path):
    cache = TransformCache(tmp_path)
    copy = tmp_path / "renamed.nii.gz"
    copy.write_bytes(brain_case.source.read_bytes())
    settings = AlignSettings().registration()
    assert cache.key(copy, brain_case.target, settings) == cache.key(brain_case.source, brain_case.target, settings)
    assert cache.key(brain_case.source_world, brain_case.target, settings) != cache.key(copy, brain_case.target, settings)
    assert cache.key(copy, brain_case.target, {**settings, "kind": "affine"}) != cache.key(copy, brain_case.target, settings)


def test_a_registration_below_the_threshold_fails_naming_both_files_and_the_score(brain_case, registered):
    _, cache = registered  # the cached transform: no second registration
    subject = PairedSubject("moved", str(brain_case.source), str(brain_case.target))
    with pytest.raises(RegistrationQualityError) as err:
        subject.aligned(AlignSettings(min_nmi=1.5), cache=cache)
    message = str(err.value)
    assert str(brain_case.source) in message and str(brain_case.target) in message
    assert "threshold 1.500" in message and f"{err.value.pair.score.nmi:.3f}" in message


def test_a_pair_without_overlap_is_refused_with_what_to_do(brain_case):
    subject = PairedSubject("far", str(brain_case.source_far), str(brain_case.target))
    with pytest.raises(PairError) as err:
        subject.aligned()
    message = str(err.value)
    assert "do not overlap in world space" in message and "0% of the target's foreground" in message
    assert str(brain_case.source_far) in message and str(brain_case.target) in message and "align=register" in message


def test_same_world_other_grid_is_resampled_without_registration(brain_case):
    pair = PairedSubject("still", str(brain_case.source_world), str(brain_case.target)).aligned()
    assert pair.space.kind == SAME_WORLD and pair.transform is None
    assert pair.score.overlap > 0.9 and pair.space.nmi_gain_nearby < 0
    assert pair.source.shape == pair.target.shape


def test_same_grid_and_a_mask_on_another_grid(brain_case, tmp_path):
    target = read_volume(brain_case.target)
    twin = target.with_array(target.array * 0.5 + np.random.default_rng(0).normal(0, 1, target.shape).astype(np.float32))
    write_nifti(twin, tmp_path / "twin.nii.gz")
    # a mask on a 1 mm grid: the brain, resampled onto the 2 mm target grid in world space
    fine = target.affine.copy()
    fine[:3, :3] /= 2
    mask = read_volume(brain_case.target).with_array(np.zeros(tuple(2 * n for n in target.shape), np.float32), affine=fine)
    mask.array[40:120, 40:150, 30:120] = 1
    write_nifti(mask, tmp_path / "mask.nii.gz")
    pair = PairedSubject("twin", str(tmp_path / "twin.nii.gz"), str(brain_case.target), str(tmp_path / "mask.nii.gz")).aligned()
    assert pair.space.kind == SAME_GRID and pair.transform is None
    np.testing.assert_array_equal(pair.source.array, twin.array)
    assert pair.mask.shape == target.shape
    assert pair.mask.array.sum() == pytest.approx(80 * 110 * 90 / 8, rel=0.05)
    assert pair.mask.array[20:60, 20:75, 15:60].all() and not pair.mask.array[:19].any()
