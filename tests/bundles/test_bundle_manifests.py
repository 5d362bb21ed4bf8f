"""The RED-WGAN bundle's file-training configs (train.yaml + train_files.yaml) read manifests through
volgan's loader (config parsing only: fast)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import ConfigParser

from tests.conftest import phantom
from volgan.data import ManifestError

CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "mri_denoise_redwgan" / "configs"


def parsed(*overrides: tuple[str, str]) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.yaml"), str(CONFIGS / "train_files.yaml")])
    for key, value in overrides:
        parser[key] = value
    return parser


def test_train_and_val_files_come_from_clean_volume_manifests(tmp_path):
    for name in ("a", "b"):
        nib.save(nib.Nifti1Image(phantom(seed=1), np.eye(4)), tmp_path / f"{name}.nii.gz")
    (tmp_path / "train.csv").write_text("subject,target\nA,a.nii.gz\nB,b.nii.gz\n")
    (tmp_path / "val.json").write_text('[{"subject": "B", "source": "", "target": "b.nii.gz"}]')
    parser = parsed(("train_manifest", str(tmp_path / "train.csv")), ("val_manifest", str(tmp_path / "val.json")))
    assert parser.get_parsed_content("train_files") == [str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz")]
    assert parser.get_parsed_content("val_files") == [str(tmp_path / "b.nii.gz")]


def test_a_broken_training_manifest_stops_before_training_with_every_problem(tmp_path):
    (tmp_path / "train.csv").write_text("subject,target\nA,a.nii.gz\nA,b.nii.gz\n")
    with pytest.raises(Exception) as err:
        parsed(("train_manifest", str(tmp_path / "train.csv"))).get_parsed_content("train_files")
    chain = [err.value, err.value.__cause__, err.value.__context__]
    problems = next(e for e in chain if isinstance(e, ManifestError)).problems
    assert len(problems) == 3 and "A: duplicate subject (rows 1 and 2)" in problems


def test_without_manifests_the_folders_are_globbed(tmp_path):
    (tmp_path / "train").mkdir()
    nib.save(nib.Nifti1Image(phantom(), np.eye(4)), tmp_path / "train" / "x.nii.gz")
    assert parsed(("dataset_dir", str(tmp_path))).get_parsed_content("train_files") == [str(tmp_path / "train" / "x.nii.gz")]
