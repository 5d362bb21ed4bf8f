"""A bundle from outside the installed ``bundles/`` folder is reported once, by path, by
`volgan infer` and `volgan label serve` (bundle configs run code)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import phantom
from volgan import bundle_origin
from volgan.bundle_origin import installed_bundles, is_installed, warn_if_external
from volgan.cli import main

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "mri_denoise_redwgan"
PHRASE = "is not one of the installed bundles"


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(bundle_origin, "_reported", set())


@pytest.fixture
def copied_bundle(tmp_path) -> Path:
    copy = tmp_path / "elsewhere" / BUNDLE.name
    shutil.copytree(BUNDLE, copy, ignore=shutil.ignore_patterns("docs"))
    return copy


def warnings_in(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if PHRASE in r.getMessage()]


def test_installed_and_external_bundles(tmp_path, copied_bundle, fresh, caplog):
    assert installed_bundles() == (ROOT / "bundles").resolve()
    assert is_installed(BUNDLE) and is_installed(ROOT / "bundles" / ".." / "bundles" / BUNDLE.name)
    assert not is_installed(copied_bundle)
    link_in = tmp_path / "link_in"
    os.symlink(BUNDLE, link_in)
    assert is_installed(link_in)  # resolved: the installed bundle itself
    link_out = ROOT / "bundles" / "planted"
    assert not is_installed(tmp_path) and is_installed(link_out)  # lexically inside: installed
    os.symlink(copied_bundle, tmp_path / "link_out")
    assert not is_installed(tmp_path / "link_out")

    assert not warn_if_external(BUNDLE) and not warn_if_external(link_in)
    assert warn_if_external(copied_bundle)
    assert not warn_if_external(tmp_path / "elsewhere" / ".." / "elsewhere" / BUNDLE.name)  # same folder: once
    [message] = warnings_in(caplog)
    assert str(copied_bundle.resolve()) in message and "\n" not in message


def test_volgan_infer_warns_once_for_an_external_bundle(tmp_path, copied_bundle, fresh, caplog):
    scans = tmp_path / "scans"
    scans.mkdir()
    for i in range(2):
        nib.save(nib.Nifti1Image(phantom((16, 16, 12), seed=i), np.eye(4)), scans / f"s{i}.nii.gz")
    assert main(["infer", str(copied_bundle), str(scans), "-o", str(tmp_path / "out_copied")]) == 0
    [message] = warnings_in(caplog)
    assert str(copied_bundle.resolve()) in message


def test_label_serve_warns_for_an_external_bundle(tmp_path, copied_bundle):
    """Before the server starts: here it cannot (no studies folder), so no server is left running."""
    cmd = [sys.executable, "-m", "volgan", "label", "serve", "--studies", str(tmp_path / "missing"),
           "--bundle", str(copied_bundle), "--bundle", str(BUNDLE)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if PHRASE in line]
    assert len(lines) == 1 and str(copied_bundle.resolve()) in lines[0]
    assert str(BUNDLE) not in lines[0]  # the installed one is not reported
