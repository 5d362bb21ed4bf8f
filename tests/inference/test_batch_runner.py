from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import nibabel as nib
import numpy as np
import pytest
from torch import nn

from tests.conftest import oblique_affine, phantom
from volgan.inference import BatchRunner, Predictor


class Half(nn.Module):
    def forward(self, x):
        return 0.5 * x


def make_inputs(folder):
    folder.mkdir()
    nib.save(nib.Nifti1Image(phantom(seed=1), oblique_affine()), folder / "a.nii.gz")
    nib.save(nib.Nifti1Image(phantom(seed=2).astype(np.int16), np.eye(4)), folder / "b.nii")
    (folder / "c.nii.gz").write_text("not an image")
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4)), folder / "d.nii.gz")
    (folder / "notes.txt").write_text("ignored")


def test_batch_goes_on_past_bad_files_and_reports(tmp_path):
    make_inputs(tmp_path / "in")
    runner = BatchRunner(Predictor(Half(), roi_size=(8, 8, 8), device="cpu"), tmp_path / "in", tmp_path / "out")
    with pytest.raises(RuntimeError) as info:
        runner.run()
    message = str(info.value)
    assert "2 of 4 input(s) failed" in message
    assert "c.nii.gz" in message and "NIfTI" in message
    assert "d.nii.gz" in message and "empty" in message
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["a.nii.gz", "b.nii.gz", "volgan_report.csv", "volgan_report.json"]
    out = nib.load(tmp_path / "out" / "a.nii.gz")
    np.testing.assert_allclose(out.affine, oblique_affine(), atol=1e-5)
    np.testing.assert_allclose(out.get_fdata(), 0.5 * phantom(seed=1), rtol=1e-4, atol=1e-3)
    report = (tmp_path / "out" / "volgan_report.csv").read_text()
    assert report.count("done") == 2 and report.count("failed") == 2


def test_rerun_skips_complete_outputs_and_redoes_corrupt_ones(tmp_path):
    make_inputs(tmp_path / "in")
    for name in ("c.nii.gz", "d.nii.gz"):
        (tmp_path / "in" / name).unlink()
    runner = BatchRunner(Predictor(Half(), roi_size=(8, 8, 8), device="cpu"), tmp_path / "in", tmp_path / "out")
    assert [r.status for r in runner.run()] == ["done", "done"]
    (tmp_path / "out" / "b.nii.gz").write_bytes(b"truncated")
    assert [r.status for r in runner.run()] == ["skipped", "done"]


def test_missing_or_empty_input_folder(tmp_path):
    runner = BatchRunner(Predictor(Half(), device="cpu"), tmp_path / "none", tmp_path / "out")
    with pytest.raises(RuntimeError, match="none: does not exist"):
        runner.run()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="names no NIfTI"):
        BatchRunner(Predictor(Half(), device="cpu"), tmp_path / "empty", tmp_path / "out").run()


def test_kill_9_never_leaves_a_truncated_output(tmp_path):
    """A process killed while writing never leaves a file under the final name; a re-run cleans up."""
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((160, 160, 160)).astype(np.float32), np.eye(4)),
             tmp_path / "in" / "big.nii.gz")
    script = textwrap.dedent(f"""
        import nibabel as nib, time
        real_save = nib.save
        def slow_save(img, name):
            real_save(img, name)
            print("written", flush=True)
            time.sleep(60)
        nib.save = slow_save
        from torch import nn
        from volgan.inference import BatchRunner, Predictor
        BatchRunner(Predictor(nn.Identity(), roi_size=(64, 64, 64), device="cpu"),
                     {str(tmp_path / 'in')!r}, {str(tmp_path / 'out')!r}).run()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, encoding="utf-8", errors="replace")
    try:
        assert proc.stdout.readline().strip() == "written"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert not (tmp_path / "out" / "big.nii.gz").exists()
    runner = BatchRunner(Predictor(nn.Identity(), roi_size=(64, 64, 64), device="cpu"), tmp_path / "in", tmp_path / "out")
    assert [r.status for r in runner.run()] == ["done"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["big.nii.gz", "volgan_report.csv", "volgan_report.json"]
