"""Folder-based training data is checked like a manifest, before training starts, naming file and reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import ConfigParser

from tests.conftest import phantom
from volgan.data import ManifestError, folder_pairs, folder_volumes

ROOT = Path(__file__).resolve().parents[2]


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array.astype(np.float32), np.eye(4)), path)
    return path


def bad_files(folder: Path) -> dict[str, str]:
    """Three unusable files next to a good one; returns name -> the reason the report must give."""
    save(folder / "a_good.nii.gz", phantom())
    truncated = save(folder / "b_truncated.nii.gz", phantom(seed=1))
    truncated.write_bytes(truncated.read_bytes()[:-300])
    nan = phantom(seed=2)
    nan[3, 4, 5] = np.nan
    save(folder / "c_nan.nii.gz", nan)
    save(folder / "d_flat.nii.gz", phantom()[:, :, 9])
    return {"b_truncated.nii.gz": "truncated", "c_nan.nii.gz": "1 NaN or infinite voxel", "d_flat.nii.gz": "2D image"}


def assert_reported(err: ManifestError, folder: Path, expected: dict[str, str]) -> None:
    assert len(err.problems) == len(expected), err.problems
    for name, reason in expected.items():
        line = next((p for p in err.problems if str(folder / name) in p), None)
        assert line is not None and reason in line, (name, err.problems)


def test_every_unusable_volume_in_a_folder_is_named_with_its_reason(tmp_path):
    expected = bad_files(tmp_path / "train")
    with pytest.raises(ManifestError) as info:
        folder_volumes(tmp_path / "train")
    assert str(info.value).startswith(f"{tmp_path / 'train'}: 3 problem(s)")
    assert_reported(info.value, tmp_path / "train", expected)


def test_a_clean_folder_lists_its_volumes(tmp_path):
    save(tmp_path / "train" / "b.nii", phantom())
    save(tmp_path / "train" / "a.nii.gz", phantom(seed=1))
    (tmp_path / "train" / ".a.partial-12.nii.gz").write_bytes(b"")
    (tmp_path / "train" / "notes.txt").write_text("not an image")
    assert folder_volumes(tmp_path / "train") == [str(tmp_path / "train" / "a.nii.gz"), str(tmp_path / "train" / "b.nii")]


def test_an_empty_or_missing_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="holds no NIfTI files"):
        folder_volumes(tmp_path / "empty")
    with pytest.raises(ManifestError, match="does not exist"):
        folder_volumes(tmp_path / "absent")


def test_folder_pairs_report_missing_partners_bad_files_and_grid_mismatches(tmp_path):
    root = tmp_path / "train"
    expected = bad_files(root / "thick")
    for name in ("a_good", "c_nan", "d_flat"):
        save(root / "clean" / f"{name}.nii.gz", phantom(seed=3))
    with pytest.raises(ManifestError) as info:
        folder_pairs(root, ["thick"], "clean")
    problems = info.value.problems
    assert any(str(root / "clean" / "b_truncated.nii.gz") in p and "does not exist" in p for p in problems), problems
    for name in ("b_truncated.nii.gz", "c_nan.nii.gz", "d_flat.nii.gz"):
        assert any(str(root / "thick" / name) in p and expected[name] in p for p in problems), problems
    assert len(problems) == 4, problems

    save(root / "clean" / "a_good.nii.gz", phantom(shape=(20, 24, 16)))
    for name in ("b_truncated", "c_nan", "d_flat"):
        (root / "thick" / f"{name}.nii.gz").unlink()
        (root / "clean" / f"{name}.nii.gz").unlink(missing_ok=True)
    with pytest.raises(ManifestError, match=r"has shape \(20, 24, 18\) but target .* has shape \(20, 24, 16\)"):
        folder_pairs(root, ["thick"], "clean")
    save(root / "clean" / "a_good.nii.gz", phantom(seed=4))
    assert folder_pairs(root, ["thick"], "clean") == [{"image": str(root / "thick" / "a_good.nii.gz"),
                                                      "label": str(root / "clean" / "a_good.nii.gz")}]
    with pytest.raises(ManifestError, match="kspace does not exist"):
        folder_pairs(root, ["thick", "kspace"], "clean")


@pytest.mark.parametrize("bundle", ["mri_denoise_redwgan", "mri_sr_mdcsrn"])
def test_bundle_train_configs_check_their_folders(tmp_path, bundle):
    folder = tmp_path / "train" / ("thick4_cubic" if bundle == "mri_sr_mdcsrn" else "")
    expected = bad_files(folder)
    if bundle == "mri_sr_mdcsrn":
        (tmp_path / "train" / "kspace").mkdir()
        for name in ("a_good", "b_truncated", "c_nan", "d_flat"):
            save(tmp_path / "train" / "clean" / f"{name}.nii.gz", phantom())
    parser = ConfigParser()
    parser.read_config([str(ROOT / "bundles" / bundle / "configs" / c) for c in ("train.yaml", "train_files.yaml")])
    parser["dataset_dir"] = str(tmp_path)
    with pytest.raises(Exception) as info:
        parser.get_parsed_content("train_files")
    chain = [info.value, info.value.__cause__, info.value.__context__]
    err = next(e for e in chain if isinstance(e, ManifestError))
    assert_reported(err, folder, expected)


def test_training_from_a_bad_folder_stops_before_any_log_is_written(tmp_path):
    expected = bad_files(tmp_path / "data" / "train")
    save(tmp_path / "data" / "val" / "v.nii.gz", phantom())
    bundle = ROOT / "bundles" / "mri_denoise_redwgan"
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file",
         json.dumps([str(bundle / "configs" / c) for c in ("train.yaml", "train_files.yaml")]),
         "--bundle_root", str(bundle), "--dataset_dir", str(tmp_path / "data"), "--ckpt_dir", str(tmp_path / "models"),
         "--output_dir", str(tmp_path / "eval"), "--max_epochs", "1", "--iterations_per_epoch", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode != 0
    for name, reason in expected.items():
        assert str(tmp_path / "data" / "train" / name) in proc.stderr and reason in proc.stderr, proc.stderr[-3000:]
    assert not list(tmp_path.glob("eval/**/events.out.tfevents*")) and not (tmp_path / "models").exists()
