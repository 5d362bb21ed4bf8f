"""Pair manifests: CSV/JSON reading, the folder-pattern helper and the all-problems report."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import phantom
from volgan.data.manifest import ManifestError, load_manifest, pairs_from_pattern, read_manifest, write_manifest


@pytest.fixture
def subjects(tmp_path):
    """Two subjects in ``{subject}/ldpet.nii.gz`` -> ``{subject}/fdpet.nii.gz`` folders, a mask for one."""
    for i, s in enumerate(("sub-01", "sub-02")):
        (tmp_path / s).mkdir()
        for name in ("ldpet", "fdpet"):
            nib.save(nib.Nifti1Image(phantom(seed=i), np.eye(4)), tmp_path / s / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image((phantom() > 10).astype(np.uint8), np.eye(4)), tmp_path / "sub-01" / "brain.nii.gz")
    return tmp_path


def test_csv_and_json_manifests_resolve_paths_relative_to_the_manifest(subjects):
    (subjects / "pairs.csv").write_text("subject,source,target,mask\nsub-01,sub-01/ldpet.nii.gz,sub-01/fdpet.nii.gz,"
                                        "sub-01/brain.nii.gz\nsub-02,sub-02/ldpet.nii.gz,sub-02/fdpet.nii.gz,\n")
    rows = [{"subject": "sub-01", "source": "sub-01/ldpet.nii.gz", "target": "sub-01/fdpet.nii.gz", "align": "world"}]
    (subjects / "pairs.json").write_text(json.dumps({"pairs": rows}))
    from_csv = load_manifest(subjects / "pairs.csv")
    assert [p.subject for p in from_csv] == ["sub-01", "sub-02"]
    assert from_csv[0].mask == str(subjects / "sub-01" / "brain.nii.gz") and from_csv[1].mask is None
    (from_json,) = load_manifest(subjects / "pairs.json")
    assert from_json.source == str(subjects / "sub-01" / "ldpet.nii.gz") and from_json.align == "world"


def test_every_problem_is_reported_at_once(subjects):
    (subjects / "sub-02" / "fdpet.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    (subjects / "pairs.csv").write_text(
        "subject,source,target,mask,align\n"
        "sub-01,sub-01/ldpet.nii.gz,sub-01/fdpet.nii.gz,sub-01/nomask.nii.gz,\n"
        "sub-01,sub-01/ldpet.nii.gz,sub-01/fdpet.nii.gz,,sideways\n"
        "sub-02,sub-02/ldpet.nii.gz,sub-02/fdpet.nii.gz,,\n"
        ",sub-03/ldpet.nii.gz,,,\n"
    )
    with pytest.raises(ManifestError) as err:
        load_manifest(subjects / "pairs.csv")
    problems = err.value.problems
    assert len(problems) == 7, problems
    text = str(err.value)
    assert "sub-01: mask " in text and "nomask.nii.gz does not exist" in text
    assert "sub-01: duplicate subject (rows 1 and 2)" in text
    assert "align must be one of" in text and "'sideways'" in text
    assert "sub-02: target " in text and "fdpet.nii.gz: is not a readable NIfTI image" in text
    assert "row 4: empty subject" in text and "row 4: empty target" in text and "sub-03/ldpet.nii.gz does not exist" in text


def test_a_manifest_without_the_required_columns_or_pairs_is_refused(tmp_path):
    (tmp_path / "bad.csv").write_text("name,input\nx,y\n")
    with pytest.raises(ManifestError, match=r"lacks column\(s\) \['source', 'subject', 'target'\]"):
        read_manifest(tmp_path / "bad.csv")
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(ManifestError, match="lists no pairs"):
        load_manifest(tmp_path / "empty.json")
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "absent.csv")


def test_folder_pattern_finds_subjects_and_leaves_missing_files_to_the_report(subjects, tmp_path):
    (subjects / "sub-02" / "brain.nii.gz").unlink(missing_ok=True)
    pairs = pairs_from_pattern(subjects, "{subject}/ldpet.nii.gz", "{subject}/fdpet.nii.gz", "{subject}/brain.nii.gz")
    assert [p.subject for p in pairs] == ["sub-01", "sub-02"]
    assert pairs[1].target == str(subjects / "sub-02" / "fdpet.nii.gz")
    manifest = write_manifest(pairs, tmp_path / "found.csv")
    with pytest.raises(ManifestError) as err:
        load_manifest(manifest)
    assert err.value.problems == [f"sub-02: mask {subjects / 'sub-02' / 'brain.nii.gz'} does not exist"]
