"""The transform cache: content keys (files and DICOM folders), safe reading, atomic writes."""

from __future__ import annotations

import json

import SimpleITK as sitk

from volgan.data.transform_cache import TransformCache, content_hash


def test_folder_hash_follows_every_file_and_name(tmp_path):
    series = tmp_path / "series"
    series.mkdir()
    for i in range(3):
        (series / f"IM{i}.dcm").write_bytes(bytes([i]) * 100)
    first = content_hash(series)
    assert content_hash(series) == first
    (series / "IM1.dcm").write_bytes(bytes([9]) * 100)
    assert content_hash(series) != first
    (series / "IM1.dcm").write_bytes(bytes([1]) * 100)
    assert content_hash(series) == first
    (series / "IM2.dcm").rename(series / "IM3.dcm")
    assert content_hash(series) != first


def test_saved_transforms_round_trip_and_unreadable_ones_are_recomputed(tmp_path, caplog):
    (tmp_path / "a.nii").write_bytes(b"a")
    (tmp_path / "b.nii").write_bytes(b"b")
    cache = TransformCache(tmp_path / "cache")
    key = cache.key(tmp_path / "a.nii", tmp_path / "b.nii", {"kind": "rigid"})
    assert cache.load(key) is None
    euler = sitk.Euler3DTransform((1.0, 2.0, 3.0), 0.1, -0.2, 0.05, (4.0, 5.0, 6.0))
    path = cache.save(key, euler, {"subject": "x"})
    assert sorted(p.name for p in cache.folder.iterdir()) == [f"{key}.json", f"{key}.tfm"]
    assert json.loads(path.with_suffix(".json").read_text()) == {"subject": "x"}
    loaded = cache.load(key)
    assert loaded.GetParameters() == euler.GetParameters() and loaded.GetFixedParameters() == euler.GetFixedParameters()
    path.write_text("#Insight Transform File V1.0\nTransform: NotATransform_double_3_3\nParameters: 1 2\n")
    assert cache.load(key) is None and "unreadable cached transform" in caplog.text
