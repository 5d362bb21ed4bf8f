"""``volgan pairs check`` on the real-anatomy brain case: report, overlays, cache, refusals."""

from __future__ import annotations

import csv
import json

import numpy as np
from matplotlib.image import imread

from volgan.cli import main


def test_pairs_check_writes_a_report_and_one_overlay_per_usable_pair(brain_case, tmp_path, capsys):
    manifest = tmp_path / "pairs.csv"
    manifest.write_text("subject,source,target\n" + "".join(
        f"{name},{getattr(brain_case, field)},{brain_case.target}\n"
        for name, field in (("moved", "source"), ("still", "source_world"), ("far", "source_far"))))
    out = tmp_path / "check"
    assert main(["pairs", "check", str(manifest), "-o", str(out)]) == 1
    rows = {r["subject"]: r for r in csv.DictReader(open(out / "pairs_report.csv"))}
    assert rows["moved"]["status"] == "ok" and rows["moved"]["classification"] == "misaligned"
    assert rows["moved"]["registered"] == "True" and len(rows["moved"]["transform_parameters"].split()) == 6
    assert float(rows["moved"]["nmi_after"]) > float(rows["moved"]["nmi_before"]) + 0.05
    assert rows["still"]["classification"] == "same_world" and rows["still"]["registered"] == "False"
    assert rows["far"]["status"] == "refused" and "do not overlap" in rows["far"]["error"]
    assert json.loads((out / "pairs_report.json").read_text())[0]["subject"] == "moved"
    for name, rows_of_panels in (("moved", 2), ("still", 1)):  # before/after rows for a registered pair
        png = imread(out / "overlays" / f"{name}.png")
        assert 2.5 / rows_of_panels < png.shape[1] / png.shape[0] < 3.2 / rows_of_panels and np.ptp(png[..., 0]) > 0.5
        colour = np.abs(png[..., 0] - png[..., 2]) > 0.2
        assert colour.mean() > 0.01  # the source is drawn in colour over the grey target
    assert not (out / "overlays" / "far.png").exists()
    assert "REFUSED far:" in capsys.readouterr().err

    assert main(["pairs", "check", str(manifest), "-o", str(out), "--no-overlays"]) == 1
    printed = capsys.readouterr().out
    assert "moved: ok, misaligned" in printed and "cached transform" in printed
    rows = {r["subject"]: r for r in csv.DictReader(open(out / "pairs_report.csv"))}
    assert rows["moved"]["from_cache"] == "True"


def test_pairs_check_lists_manifest_problems_before_any_work(tmp_path, capsys):
    manifest = tmp_path / "pairs.csv"
    manifest.write_text("subject,source,target\na,missing_a.nii.gz,t.nii.gz\na,missing_b.nii.gz,t.nii.gz\n")
    assert main(["pairs", "check", str(manifest), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "5 problem(s)" in err and "duplicate subject" in err and "missing_b.nii.gz does not exist" in err
    assert not (tmp_path / "out").exists()


def test_pairs_manifest_from_a_folder_layout(tmp_path, capsys):
    for s in ("sub-01", "sub-02"):
        (tmp_path / s).mkdir()
        (tmp_path / s / "ldpet.nii.gz").write_bytes(b"x")
    (tmp_path / "sub-01" / "fdpet.nii.gz").write_bytes(b"x")
    out = tmp_path / "pairs.csv"
    code = main(["pairs", "manifest", str(tmp_path), "--source", "{subject}/ldpet.nii.gz", "--target",
                 "{subject}/fdpet.nii.gz", "-o", str(out)])
    assert code == 1 and "sub-02: target" in capsys.readouterr().err
    rows = list(csv.DictReader(open(out)))
    assert [r["subject"] for r in rows] == ["sub-01", "sub-02"]
    assert rows[0]["target"] == str(tmp_path / "sub-01" / "fdpet.nii.gz")
