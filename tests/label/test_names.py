"""Plain names for the MONAI Label datastore, and confinement of the paths built from them."""

from __future__ import annotations

import os

import pytest

from volgan.label.names import BadName, OutsideStudies, check_name, confined, volume_extension


@pytest.mark.parametrize("name", ["head", "sub-01_T1w", "scan 2", "x.nii.gz", "ünïcode"])
def test_plain_names_are_accepted(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name, phrase", [
    ("../x", "path"), ("../../x", "path"), ("/etc/passwd", "path"), ("a/b", "path"), ("a\\b", "path"),
    ("..", "dot"), (".", "dot"), (".hidden", "dot"), ("a\x00b", "NUL"), ("a\nb", "control"),
    ("", "missing"), (None, "missing"), ("x" * 300, "longer"),
])
def test_paths_and_odd_names_are_refused_with_the_reason(name, phrase):
    with pytest.raises(BadName, match=phrase):
        check_name(name, "image id")


@pytest.mark.parametrize("filename, ext", [("a.nii.gz", ".nii.gz"), ("A.NII", ".nii"), ("a.b.nii.gz", ".nii.gz")])
def test_volume_extensions(filename, ext):
    assert volume_extension(filename) == ext


@pytest.mark.parametrize("filename", ["payload.sh", "a.nii.gz.sh", "a.nrrd", ".nii.gz", "", None, "a.zip"])
def test_other_files_are_refused(filename):
    with pytest.raises(BadName, match="not a volume file"):
        volume_extension(filename)


def test_confined_follows_links(tmp_path):
    root = tmp_path / "studies"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "secret.nii.gz"
    outside.write_bytes(b"x")
    (root / "in.nii.gz").write_bytes(b"y")
    os.symlink(outside, root / "out.nii.gz")
    os.symlink(root / "in.nii.gz", root / "alias.nii.gz")
    os.symlink(root / "sub" / "deep.nii.gz", root / "down.nii.gz")
    os.symlink(tmp_path, root / "escape")

    assert confined(root, "in.nii.gz") == root.resolve() / "in.nii.gz"
    assert confined(root, "alias.nii.gz") == root.resolve() / "alias.nii.gz"
    assert confined(root, "new.nii.gz") == root.resolve() / "new.nii.gz"  # need not exist
    for name in ("out.nii.gz", "down.nii.gz"):
        with pytest.raises(OutsideStudies, match="outside"):
            confined(root, name)
    with pytest.raises(OutsideStudies):
        confined(root, "escape")  # a folder (a tag's, the labels') that leads out
    with pytest.raises(BadName):
        confined(root, "../secret.nii.gz")
