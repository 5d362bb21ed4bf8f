"""Run a predictor over every volume in a folder: one output per input, resumable, per-file errors."""

from __future__ import annotations

import csv
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from volgan.io import VolumeError, is_nifti, nifti_stem, read_nifti, read_volume, write_nifti

logger = logging.getLogger(__name__)

REPORT_FIELDS = ("input", "output", "status", "error", "seconds", "shape")


@dataclass
class FileResult:
    """Outcome for one input: ``status`` is ``done``, ``skipped`` (valid output existed) or ``failed``."""

    input: str
    output: str
    status: str
    error: str = ""
    seconds: float = 0.0
    shape: str = ""


def find_inputs(dataset_dir: str | os.PathLike) -> list[Path]:
    """NIfTI files and DICOM series sub-folders directly in ``dataset_dir``, sorted by name."""
    folder = Path(dataset_dir)
    if not folder.is_dir():
        raise VolumeError(folder, "input folder does not exist")
    found = [
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and ((p.is_file() and is_nifti(p)) or p.is_dir())
    ]
    return sorted(found)


def output_name(path: str | os.PathLike) -> str:
    """``scan.nii.gz`` -> ``scan.nii.gz``; ``scan.nii`` -> ``scan.nii.gz``; DICOM folder ``s1`` -> ``s1.nii.gz``."""
    p = Path(path)
    return f"{nifti_stem(p) if is_nifti(p) else p.name}.nii.gz"


def is_complete(output: Path, expected_shape: tuple[int, ...] | None = None) -> bool:
    """True if ``output`` is a fully readable NIfTI (and has ``expected_shape`` when given)."""
    if not output.is_file():
        return False
    try:
        vol = read_nifti(output, check=False)
    except VolumeError:
        return False
    return expected_shape is None or vol.shape == tuple(expected_shape)


def remove_stale_partials(output: Path) -> None:
    """Delete temporary files that an interrupted (e.g. ``kill -9``) write of ``output`` left behind."""
    for stale in output.parent.glob(f".{nifti_stem(output)}.partial-*"):
        stale.unlink(missing_ok=True)


class FolderRunner:
    """Apply ``predictor`` to every volume in ``dataset_dir`` and write results to ``output_dir``.

    Outputs are named after the inputs, written atomically (temporary name + rename), so an
    interrupted run never leaves a truncated file under the final name; a re-run skips inputs
    whose output is complete. A file that fails is reported with the reason and the others go on;
    after the batch, a CSV report is written and :class:`RuntimeError` lists the failures.

    Args:
        predictor: object with ``predict(Volume) -> Volume`` (e.g. :class:`~volgan.inference.Predictor`).
        dataset_dir: folder of NIfTI files and/or DICOM series sub-folders.
        output_dir: created if missing.
        report_name: CSV report written into ``output_dir``.
        overwrite: recompute even if a complete output exists.
        raise_on_failure: raise after the batch if any input failed.
    """

    def __init__(
        self,
        predictor,
        dataset_dir: str | os.PathLike,
        output_dir: str | os.PathLike,
        *,
        report_name: str = "volgan_report.csv",
        overwrite: bool = False,
        raise_on_failure: bool = True,
    ):
        self.predictor = predictor
        self.dataset_dir, self.output_dir = Path(dataset_dir), Path(output_dir)
        self.report_name, self.overwrite, self.raise_on_failure = report_name, overwrite, raise_on_failure

    def process(self, path: Path) -> FileResult:
        out = self.output_dir / output_name(path)
        start = time.perf_counter()
        if not self.overwrite and is_complete(out):
            return FileResult(str(path), str(out), "skipped")
        remove_stale_partials(out)
        try:
            volume = read_volume(path)
            result = self.predictor.predict(volume)
            write_nifti(result, out)
        except (VolumeError, ValueError, RuntimeError, OSError) as err:
            message = str(err) if isinstance(err, VolumeError) else f"{path}: {type(err).__name__}: {err}"
            logger.error("failed: %s", message)
            return FileResult(str(path), "", "failed", message, round(time.perf_counter() - start, 3))
        seconds = round(time.perf_counter() - start, 3)
        logger.info("wrote %s (%.1f s)", out, seconds)
        return FileResult(str(path), str(out), "done", "", seconds, "x".join(map(str, volume.shape)))

    def write_report(self, results: list[FileResult]) -> Path:
        report = self.output_dir / self.report_name
        tmp = report.with_name(f".{report.name}.partial-{os.getpid()}")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=REPORT_FIELDS)
            writer.writeheader()
            for r in results:
                writer.writerow(asdict(r))
        os.replace(tmp, report)
        return report

    def run(self) -> list[FileResult]:
        inputs = find_inputs(self.dataset_dir)
        if not inputs:
            raise VolumeError(self.dataset_dir, "holds no NIfTI files or DICOM series folders")
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise VolumeError(self.output_dir, f"output folder cannot be created ({err})") from err
        if not os.access(self.output_dir, os.W_OK):
            raise VolumeError(self.output_dir, "output folder is not writable")
        results = [self.process(p) for p in inputs]
        self.write_report(results)
        failed = [r for r in results if r.status == "failed"]
        logger.info(
            "%d done, %d skipped, %d failed", sum(r.status == "done" for r in results),
            sum(r.status == "skipped" for r in results), len(failed),
        )
        if failed and self.raise_on_failure:
            lines = "\n".join(f"  {r.error}" for r in failed)
            raise RuntimeError(f"{len(failed)} of {len(results)} input(s) failed:\n{lines}")
        return results
