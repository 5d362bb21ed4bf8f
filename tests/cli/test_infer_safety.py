"""`volgan infer` keeps data safe: inputs never overlap outputs, resume checks provenance, concurrent
runs on one folder cooperate, values the model cannot represent are reported, broken links are named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.conftest import oblique_affine, phantom
from volgan.cli import main

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "mri_denoise_redwgan"


def save(path: Path, array: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, oblique_affine()), path)
    return path


def rows(out: Path) -> dict[str, dict]:
    return {Path(r["input"]).name: r for r in json.loads((out / "volgan_report.json").read_text())}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def scans(tmp_path) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    save(folder / "a.nii.gz", phantom(seed=1))
    save(folder / "b.nii", phantom(seed=2))
    return folder


@pytest.mark.parametrize("where", ["same folder", "inside", "containing", "link to it", "file's folder", "glob"])
def test_output_folder_overlapping_the_inputs_is_refused_before_any_work(where, scans, tmp_path, capsys):
    before = snapshot(tmp_path)
    inputs = [str(scans)]
    if where == "same folder":
        out = scans
    elif where == "inside":
        out = scans / "denoised"
    elif where == "containing":
        out = tmp_path
    elif where == "link to it":
        out = tmp_path / "alias"
        out.symlink_to(scans, target_is_directory=True)
        before = snapshot(tmp_path)
    elif where == "file's folder":
        inputs, out = [str(scans / "a.nii.gz")], scans
    else:
        inputs, out = [str(scans / "*.nii*")], scans
    assert main(["infer", str(BUNDLE), *inputs, "-o", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "volgan: error:" in err and "input" in err and str(out) in err
    assert snapshot(tmp_path) == before, "nothing may be written or changed"
    assert not (scans / "denoised").exists()


def test_an_output_that_links_to_an_input_is_not_written_through(scans, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.nii.gz").symlink_to(scans / "a.nii.gz")
    original = (scans / "a.nii.gz").read_bytes()
    assert main(["infer", str(BUNDLE), str(scans / "a.nii.gz"), "-o", str(out), "--overwrite"]) == 1
    assert "is an input" in rows(out)["a.nii.gz"]["error"]
    assert (scans / "a.nii.gz").read_bytes() == original


def perturbed_bundle(folder: Path) -> Path:
    """A copy of the denoising bundle with other weights."""
    copy = folder / "other_bundle"
    shutil.copytree(BUNDLE, copy)
    state = torch.load(copy / "models" / "model.pt", map_location="cpu", weights_only=True)
    state = state.get("generator", state)
    for value in state.values():
        if value.is_floating_point():
            value.mul_(1.5)
    torch.save(state, copy / "models" / "model.pt")
    return copy


def test_resume_redoes_or_refuses_outputs_made_from_another_input_bundle_or_options(scans, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["infer", str(BUNDLE), str(scans / "a.nii.gz"), "-o", str(out)]
    assert main(args) == 0
    first = (out / "a.nii.gz").read_bytes()
    row = rows(out)["a.nii.gz"]
    assert row["status"] == "done" and len(row["input_sha256"]) == 64 and len(row["output_sha256"]) == 64
    assert row["model"]["weights_sha256"] and row["options"]["precision"] == "fp32"
    assert main(args) == 0 and rows(out)["a.nii.gz"]["status"] == "skipped"

    # the same name, another input (another shape): refused without --overwrite, redone with it
    save(scans / "a.nii.gz", phantom((16, 20, 12), seed=5))
    assert main(args) == 1
    row = rows(out)["a.nii.gz"]
    assert row["status"] == "failed" and "different input" in row["error"] and "--overwrite" in row["error"]
    assert (out / "a.nii.gz").read_bytes() == first
    assert main([*args, "--overwrite"]) == 0
    assert nib.load(out / "a.nii.gz").shape == (16, 20, 12)
    second = (out / "a.nii.gz").read_bytes()

    # another bundle (other weights), then other options: refused, output untouched
    other = perturbed_bundle(tmp_path)
    assert main(["infer", str(other), str(scans / "a.nii.gz"), "-o", str(out)]) == 1
    assert "another model" in rows(out)["a.nii.gz"]["error"]
    assert main([*args, "--fast"]) == 1
    assert "other options" in rows(out)["a.nii.gz"]["error"]
    assert (out / "a.nii.gz").read_bytes() == second
    assert main(args) == 0 and rows(out)["a.nii.gz"]["status"] == "skipped"

    # an output changed after it was written, or one without a record, is not trusted either
    save(out / "a.nii.gz", phantom((16, 20, 12), seed=9))
    assert main(args) == 1 and "changed since" in rows(out)["a.nii.gz"]["error"]
    (out / "volgan_report.json").unlink()
    assert main(args) == 1 and "no record" in rows(out)["a.nii.gz"]["error"]


def infer_process(inputs: list[Path], out: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "volgan", "infer", str(BUNDLE), *map(str, inputs), "-o", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8")


def test_two_concurrent_runs_on_one_folder_share_the_work_and_one_report(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shared = [save(src / f"s{i}.nii.gz", phantom((40, 40, 40), seed=i)) for i in range(6)]
    own = [save(src / f"own{i}.nii.gz", phantom((40, 40, 40), seed=10 + i)) for i in range(2)]
    out = tmp_path / "out"
    procs = [infer_process([*shared, own[0]], out), infer_process([own[1], *shared], out)]
    logs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    done = [line.split("] ")[1].split()[0] for _, err in logs for line in err.splitlines()
            if line.startswith("[") and " done in " in line]
    assert sorted(done) == sorted(p.name for p in shared + own), "each output is made exactly once"
    report = rows(out)
    assert sorted(report) == sorted(p.name for p in shared + own), "the report lists every input of both runs"
    assert {r["status"] for r in report.values()} <= {"done", "skipped"}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [p.name for p in shared + own] + ["volgan_report.csv", "volgan_report.json"]), "no temporary or lock files left"
    for path in shared + own:
        assert nib.load(out / path.name).shape == (40, 40, 40)


@pytest.mark.parametrize("bundle", ["mri_denoise_redwgan", "pet_lowdose_cgan"])
def test_values_below_what_the_model_can_output_are_reported_or_refused(bundle, tmp_path, capsys):
    rng = np.random.default_rng(0)
    ct = rng.uniform(-1000.0, 3000.0, (24, 24, 20)).astype(np.float32)
    ct[:, :, :5] = -1000.0  # air
    path = save(tmp_path / "ct_head.nii.gz", ct)
    mr = save(tmp_path / "mr.nii.gz", phantom(seed=3))
    share = float((ct < 0).mean())
    out = tmp_path / "out"
    assert main(["infer", str(ROOT / "bundles" / bundle), str(path), str(mr), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"WARNING {path}" in err and f"{100 * share:.1f} %" in err and "below 0" in err
    report = rows(out)
    assert f"{100 * share:.1f} %" in report["ct_head.nii.gz"]["warning"] and report["mr.nii.gz"]["warning"] == ""
    # what the warning is about: the air (-1000) comes back near 0
    assert abs(np.median(nib.load(out / "ct_head.nii.gz").get_fdata()[:, :, :3])) < 1.0
    strict = tmp_path / "strict"
    assert main(["infer", str(ROOT / "bundles" / bundle), str(path), str(mr), "-o", str(strict), "--strict"]) == 1
    report = rows(strict)
    assert report["ct_head.nii.gz"]["status"] == "failed" and "below 0" in report["ct_head.nii.gz"]["error"]
    assert report["mr.nii.gz"]["status"] == "done"
    assert not (strict / "ct_head.nii.gz").exists()


def test_broken_links_in_an_input_folder_are_reported_as_failed(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    save(src / "good.nii.gz", phantom())
    (src / "gone.nii.gz").symlink_to(tmp_path / "moved_away.nii.gz")
    (src / "loop.nii.gz").symlink_to(src / "loop.nii.gz")
    (src / "series").symlink_to(tmp_path / "no_such_series")
    out = tmp_path / "out"
    assert main(["infer", str(BUNDLE), str(src), "-o", str(out)]) == 1
    report = rows(out)
    assert report["good.nii.gz"]["status"] == "done"
    assert report["gone.nii.gz"]["status"] == "failed" and "broken symbolic link" in report["gone.nii.gz"]["error"]
    assert "moved_away.nii.gz" in report["gone.nii.gz"]["error"]
    assert report["loop.nii.gz"]["status"] == "failed" and "loop" in report["loop.nii.gz"]["error"]
    assert report["series"]["status"] == "failed" and "broken symbolic link" in report["series"]["error"]
