"""data_scripts/make_pet_data.py: sampling maps (also for a subject without lesions) and the
manifests pairing each low-dose scan with the full-dose scan or with the noise-free truth."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "data_scripts"))
from make_pet_data import write_manifest, write_sampling_map  # noqa: E402


def _save(path: Path, array: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(array, np.diag([2.0, 2.0, 2.0, 1.0])), path)


def test_sampling_map_marks_brain_and_lesions_and_accepts_no_lesion(tmp_path):
    brain = np.zeros((8, 8, 8), np.uint8)
    brain[2:6, 2:6, 2:6] = 1
    for name, lesion_voxels in (("sub-001", [(3, 3, 3)]), ("sub-002", [])):
        lesions = np.zeros_like(brain)
        for v in lesion_voxels:
            lesions[v] = 1
        _save(tmp_path / f"{name}_brain.nii.gz", brain)
        _save(tmp_path / f"{name}_lesions.nii.gz", lesions)
        write_sampling_map(tmp_path, name)
        labels = np.asarray(nib.load(tmp_path / f"{name}_sampling.nii.gz").dataobj)
        expected = brain.copy()
        for v in lesion_voxels:
            expected[v] = 2
        np.testing.assert_array_equal(labels, expected)


def test_manifests_pair_every_low_dose_with_the_chosen_target(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    for target in ("full", "truth"):
        path = tmp_path / f"train_{target}.csv"
        write_manifest(folder, ["sub-001", "sub-002"], path, target=target)
        rows = list(csv.DictReader(path.open()))
        assert [r["subject"] for r in rows] == [f"sub-00{k}_dose-{d}" for k in (1, 2) for d in (4, 10, 20)]
        for r in rows:
            name = r["subject"].split("_")[0]
            assert r["source"] == f"train/{r['subject']}.nii.gz"
            assert r["target"] == f"train/{name}_{target}.nii.gz"
            assert r["mask"] == f"train/{name}_sampling.nii.gz"


def test_the_montage_shows_each_subject_and_refuses_an_empty_folder(tmp_path):
    import json

    import pet_montage
    import pytest

    folder = tmp_path / "train"
    folder.mkdir()
    for k in (1, 2):
        name = f"sub-00{k}"
        (folder / f"{name}.json").write_text(json.dumps({"spacing_mm": [2, 2, 2], "fwhm_mm": [4, 4, 4], "lesions": []}))
        for key in ("truth", "full", "dose-10"):
            _save(folder / f"{name}_{key}.nii.gz", np.random.default_rng(k).random((8, 9, 7)).astype(np.float32))
    out = tmp_path / "docs" / "draws.png"
    pet_montage.main(["--data", str(tmp_path), "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["draws.png"]  # no partial file left behind
    with pytest.raises(SystemExit, match="no sub-"):
        pet_montage.main(["--data", str(tmp_path), "--split", "val", "--out", str(out)])
