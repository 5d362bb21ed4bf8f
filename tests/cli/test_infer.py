"""`volgan infer` end to end with the real denoising bundle: many kinds of input, bad files,
resume, reports, QA pictures, and sharding under torchrun."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import oblique_affine, phantom
from tests.io.test_dicom import write_series
from volgan.cli import main

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = str(ROOT / "bundles" / "mri_denoise_redwgan")


def save(path: Path, array: np.ndarray, affine=None) -> Path:
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), path)
    return path


def report(out: Path) -> dict[str, dict]:
    return {Path(r["input"]).name: r for r in json.loads((out / "volgan_report.json").read_text())}


def make_bad(kind: str, folder: Path) -> tuple[Path, str]:
    """One bad input of ``kind`` in ``folder``; returns its path and a phrase its error must contain."""
    good = save(folder / "src.nii.gz", phantom())
    data = good.read_bytes()
    good.unlink()
    if kind == "corrupted gzip":
        path = folder / "corrupt.nii.gz"
        path.write_bytes(data[:200] + bytes(b ^ 0x5A for b in data[200:]))
        return path, "corrupt"
    if kind == "truncated":
        path = folder / "truncated.nii.gz"
        raw = gzip.decompress(data)
        path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
        return path, "truncated"
    if kind == "2D":
        return save(folder / "slice.nii.gz", phantom()[:, :, 0].copy()), "2D"
    if kind == "4D":
        return save(folder / "series.nii.gz", np.stack([phantom()] * 3, -1)), "4D"
    if kind == "empty":
        return save(folder / "zeros.nii.gz", np.zeros((20, 24, 18), np.float32)), "empty"
    if kind == "NaN":
        arr = phantom()
        arr[3, 4, 5] = np.nan
        return save(folder / "nan.nii.gz", arr), "NaN"
    if kind == "not an image":
        path = folder / "notes.nii.gz"
        path.write_bytes(gzip.compress(b"patient notes, not an image\n" * 20))
        return path, "NIfTI"
    if kind == "unreadable DICOM":
        series = folder / "series_dcm"
        series.mkdir()
        for i in range(3):
            (series / f"IM{i:04d}.dcm").write_bytes(os.urandom(512))
        return series, "DICOM"
    if kind == "enormous spacing":
        return save(folder / "huge.nii.gz", phantom(), np.diag([1000.0, 1000.0, 1000.0, 1.0])), "spacing"
    raise AssertionError(kind)


BAD_KINDS = ["corrupted gzip", "truncated", "2D", "4D", "empty", "NaN", "not an image", "unreadable DICOM",
             "enormous spacing"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_is_reported_and_the_batch_completes(kind, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    save(src / "good.nii.gz", phantom(seed=3), oblique_affine())
    bad, phrase = make_bad(kind, src)
    assert main(["infer", BUNDLE, str(src), "-o", str(out), "--fast"]) == 1
    rows = report(out)
    assert rows["good.nii.gz"]["status"] == "done"
    assert rows[bad.name]["status"] == "failed"
    assert bad.name in rows[bad.name]["error"] and phrase.lower() in rows[bad.name]["error"].lower()
    assert f"FAILED {bad}" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["good.nii.gz", "volgan_report.csv", "volgan_report.json"]


def test_volume_smaller_than_the_window_is_padded_and_kept_on_its_grid(tmp_path):
    small = save(tmp_path / "small.nii.gz", phantom((9, 7, 5)), oblique_affine())
    assert main(["infer", BUNDLE, str(small), "-o", str(tmp_path / "out")]) == 0
    out = nib.load(tmp_path / "out" / "small.nii.gz")
    assert out.shape == (9, 7, 5)
    np.testing.assert_allclose(out.affine, oblique_affine(), atol=1e-5)


def test_unwritable_output_folder_is_refused_before_any_work(tmp_path, read_only_dir, capsys):
    good = save(tmp_path / "good.nii.gz", phantom())
    assert main(["infer", BUNDLE, str(good), "-o", str(read_only_dir)]) == 2
    err = capsys.readouterr().err
    assert str(read_only_dir) in err and "not writable" in err
    assert list(read_only_dir.iterdir()) == []


def test_files_globs_folders_and_dicom_series_resume_and_qa(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    save(a / "one.nii.gz", phantom(seed=1), oblique_affine())
    save(a / "two.nii", phantom(seed=2).astype(np.int16))
    save(b / "three.nii.gz", phantom(seed=3))
    write_series(b / "dicom_series", phantom(seed=4).round().astype(np.int16), oblique_affine((1.0, 1.0, 2.0)))
    out = tmp_path / "out"
    args = ["infer", BUNDLE, str(a / "one.nii.gz"), str(a / "*.nii"), str(b), str(tmp_path / "missing.nii.gz"),
            "-o", str(out), "--fast", "--qa"]
    assert main(args) == 1  # the missing file fails, the others are done
    rows = report(out)
    assert {k: v["status"] for k, v in rows.items()} == {
        "one.nii.gz": "done", "two.nii": "done", "three.nii.gz": "done", "dicom_series": "done", "missing.nii.gz": "failed"}
    assert "does not exist" in rows["missing.nii.gz"]["error"]
    for name in ("one", "two", "three", "dicom_series"):
        assert (out / f"{name}.nii.gz").is_file() and (out / f"{name}_qa.png").stat().st_size > 1000
    assert nib.load(out / "dicom_series.nii.gz").shape == phantom().shape
    err = capsys.readouterr().err
    assert "[1/5]" in err and "[5/5]" in err and "ETA" in err
    # a re-run skips complete outputs and redoes a damaged one
    (out / "two.nii.gz").write_bytes(b"damaged")
    assert main(args) == 1
    assert {k: v["status"] for k, v in report(out).items()} == {
        "one.nii.gz": "skipped", "two.nii": "done", "three.nii.gz": "skipped", "dicom_series": "skipped",
        "missing.nii.gz": "failed"}


def test_two_inputs_with_one_output_name_do_not_overwrite_each_other(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        save(tmp_path / sub / "scan.nii.gz", phantom())
    out = tmp_path / "out"
    assert main(["infer", BUNDLE, str(tmp_path / "x"), str(tmp_path / "y"), "-o", str(out), "--fast"]) == 1
    rows = json.loads((out / "volgan_report.json").read_text())
    assert [r["status"] for r in rows] == ["done", "failed"] and "already taken" in rows[1]["error"]


@pytest.mark.slow
def test_torchrun_shards_inputs_and_merges_one_report(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        save(src / f"s{i}.nii.gz", phantom(seed=i))
    (src / "broken.nii.gz").write_text("not an image")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "volgan", "infer", BUNDLE, str(src), "-o", str(out), "--fast"]
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=600, cwd=ROOT)
    assert proc.returncode != 0, "a failed input must make the job fail"
    rows = json.loads((out / "volgan_report.json").read_text())
    assert sorted(Path(r["input"]).name for r in rows) == sorted(["broken.nii.gz"] + [f"s{i}.nii.gz" for i in range(5)])
    assert {r["rank"] for r in rows} == {0, 1}
    assert sum(r["status"] == "done" for r in rows) == 5
    assert "rank 1: [" in proc.stderr and "rank 0: [" in proc.stderr
    for i in range(5):
        assert nib.load(out / f"s{i}.nii.gz").shape == phantom().shape


def test_suv_output_is_refused_for_a_bundle_without_it(tmp_path, capsys):
    assert main(["infer", BUNDLE, str(tmp_path), "-o", str(tmp_path / "out"), "--suv-output"]) == 2
    assert "--suv-output is for PET bundles" in capsys.readouterr().err


def test_an_unknown_backend_is_refused_with_the_valid_ones(tmp_path, capsys):
    """--backend and a bundle config's backend accept auto, native and torch; anything else stops
    before any work with an error naming them."""
    src = save(tmp_path / "a.nii.gz", phantom((12, 12, 12)))
    with pytest.raises(SystemExit) as exit_:
        main(["infer", BUNDLE, str(src), "-o", str(tmp_path / "out"), "--backend", "onnxruntime"])
    assert exit_.value.code == 2
    assert "invalid choice: 'onnxruntime'" in capsys.readouterr().err
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").symlink_to(Path(BUNDLE) / "models")
    for config in (Path(BUNDLE) / "configs").iterdir():
        text = config.read_text()
        (bundle / "configs" / config.name).write_text(
            text.replace("\nbackend: auto\n", "\nbackend: onnxruntime\n") if config.name == "inference.yaml" else text)
    assert main(["infer", str(bundle), str(src), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "backend must be one of ('auto', 'native', 'torch'), got 'onnxruntime'" in err and str(bundle) in err
    assert not (tmp_path / "out").exists()
