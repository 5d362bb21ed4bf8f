from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

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


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


def test_only_partials_of_this_process_or_of_ended_processes_are_removed(tmp_path):
    from volgan.inference.batch_runner import remove_stale_partials
    from volgan.inference.run_lock import HOST

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {"live": f".a.partial-{sleeper.pid}.nii.gz", "dead": f".a.partial-{dead_pid()}.nii.gz",
                 "mine": f".a.partial-{os.getpid()}.nii.gz", "other host": ".a.partial-elsewhere-1.nii.gz",
                 "own host, dead": f".a.partial-{HOST}-{dead_pid()}.nii.gz",
                 "other output": f".ab.partial-{dead_pid()}.nii.gz"}
        for name in names.values():
            (tmp_path / name).write_bytes(b"x")
        remove_stale_partials(tmp_path / "a.nii.gz")
        left = {k for k, name in names.items() if (tmp_path / name).exists()}
        assert left == {"live", "other host", "other output"}
    finally:
        sleeper.kill()
        sleeper.wait(30)


def test_lock_files_are_taken_over_only_from_ended_processes(tmp_path):
    from volgan.inference.run_lock import HOST, FileLock, process_start

    path = tmp_path / ".a.nii.gz.lock"
    first = FileLock(path)
    assert first.try_acquire() and json.loads(path.read_text())["pid"] == os.getpid()
    assert not FileLock(path).try_acquire(), "held by a running process"
    first.release()
    assert not path.exists()
    path.write_text(json.dumps({"host": HOST, "pid": dead_pid(), "start": ""}))
    assert FileLock(path).try_acquire(), "its owner has ended: stale"
    path.write_text(json.dumps({"host": HOST, "pid": os.getpid(), "start": str(int(process_start(os.getpid())) + 1)}))
    assert FileLock(path).try_acquire(), "the pid was reused by another process: stale"
    path.write_text(json.dumps({"host": "another-machine", "pid": dead_pid()}))
    assert not FileLock(path).try_acquire(), "a process on another machine cannot be checked: never taken over"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name], "nothing else left behind"


def test_an_output_locked_by_another_run_is_done_after_that_run_ends(tmp_path):
    import threading

    from volgan.inference.run_lock import HOST, process_start

    make_inputs(tmp_path / "in")
    for name in ("c.nii.gz", "d.nii.gz"):
        (tmp_path / "in" / name).unlink()
    out = tmp_path / "out"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    (out / ".a.nii.gz.lock").write_text(json.dumps({"host": HOST, "pid": other.pid, "start": process_start(other.pid)}))
    (out / f".a.partial-{other.pid}.nii.gz").write_bytes(b"being written")
    timer = threading.Timer(3.0, other.kill)
    timer.start()
    try:
        start = time.perf_counter()
        results = BatchRunner(Predictor(Half(), roi_size=(8, 8, 8), device="cpu"), tmp_path / "in", out).run()
        waited = time.perf_counter() - start
    finally:
        timer.cancel()
        other.kill()
        other.wait(30)
    assert [(Path(r.input).name, r.status) for r in results] == [("b.nii", "done"), ("a.nii.gz", "done")]
    assert waited >= 2.5, "a.nii.gz waited for the other run"
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz", "b.nii.gz", "volgan_report.csv", "volgan_report.json"]


def test_report_rows_of_earlier_runs_stay_and_record_provenance(tmp_path):
    make_inputs(tmp_path / "in")
    (tmp_path / "in" / "c.nii.gz").unlink()
    (tmp_path / "in" / "d.nii.gz").unlink()
    out = tmp_path / "out"
    BatchRunner(Predictor(Half(), roi_size=(8, 8, 8), device="cpu"), tmp_path / "in" / "a.nii.gz", out).run()
    BatchRunner(Predictor(Half(), roi_size=(8, 8, 8), device="cpu"), tmp_path / "in" / "b.nii", out).run()
    rows = {Path(r["input"]).name: r for r in json.loads((out / "volgan_report.json").read_text())}
    assert sorted(rows) == ["a.nii.gz", "b.nii"] and {r["status"] for r in rows.values()} == {"done"}
    assert rows["a.nii.gz"]["model"]["network"] == "Half" and rows["a.nii.gz"]["options"]["roi_size"] == [8, 8, 8]
    # a network with other weights made them: conflicts without overwrite, redone with it
    twice = nn.Conv3d(1, 1, 1, bias=False)
    nn.init.constant_(twice.weight, 2.0)
    results = BatchRunner(Predictor(twice, roi_size=(8, 8, 8), device="cpu"), tmp_path / "in", out,
                          raise_on_failure=False).run()
    assert [r.status for r in results] == ["failed", "failed"] and "another model" in results[0].error
    results = BatchRunner(Predictor(twice, roi_size=(8, 8, 8), device="cpu"), tmp_path / "in", out, overwrite=True).run()
    assert [r.status for r in results] == ["done", "done"]
    np.testing.assert_allclose(nib.load(out / "a.nii.gz").get_fdata(), 2 * phantom(seed=1), rtol=1e-4, atol=1e-3)
