"""Run a predictor over many volumes: one output per input, resumable, per-file errors, sharded."""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from volgan.inference.inputs import output_name, resolve_inputs
from volgan.inference.montage import montage
from volgan.inference.progress import Progress
from volgan.inference.sharding import Shard
from volgan.io import VolumeError, nifti_stem, read_nifti, read_volume, write_nifti

logger = logging.getLogger(__name__)

REPORT_FIELDS = ("input", "output", "status", "error", "seconds", "shape", "rank")


@dataclass
class FileResult:
    """Outcome for one input: ``status`` is ``done``, ``skipped`` (valid output existed) or ``failed``."""

    input: str
    output: str
    status: str
    error: str = ""
    seconds: float = 0.0
    shape: str = ""
    rank: int = 0


def is_complete(output: Path) -> bool:
    """True if ``output`` is a NIfTI that reads in full (the gzip checksum catches truncation)."""
    if not output.is_file():
        return False
    try:
        read_nifti(output, check=False)
    except VolumeError:
        return False
    return True


def remove_stale_partials(output: Path) -> None:
    """Delete temporary files that an interrupted (e.g. ``kill -9``) write of ``output`` left behind."""
    for stale in output.parent.glob(f".{nifti_stem(output)}.partial-*"):
        stale.unlink(missing_ok=True)


def write_report(results: list[FileResult], folder: Path, stem: str) -> tuple[Path, Path]:
    """``stem.csv`` and ``stem.json`` in ``folder``, each written atomically."""
    paths = folder / f"{stem}.csv", folder / f"{stem}.json"
    for path in paths:
        tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
        with open(tmp, "w", newline="") as f:
            if path.suffix == ".csv":
                writer = csv.DictWriter(f, fieldnames=REPORT_FIELDS)
                writer.writeheader()
                writer.writerows(asdict(r) for r in results)
            else:
                json.dump([asdict(r) for r in results], f, indent=1)
        os.replace(tmp, path)
    return paths


class BatchRunner:
    """Apply ``predictor`` to every input volume and write the results to ``output_dir``.

    Outputs are NIfTI files named after the inputs, written atomically (temporary name + rename),
    so an interrupted run never leaves a truncated file under the final name; a re-run skips
    inputs whose output reads in full. A file that fails is reported with the reason and the
    others go on. Under ``torchrun`` each process takes every N-th input and the ranks' results
    are merged into one report by rank 0. After the batch a CSV and a JSON report are written and,
    if anything failed and ``raise_on_failure``, :class:`RuntimeError` lists the failures.

    Args:
        predictor: object with ``predict(Volume) -> Volume`` (e.g. :class:`~volgan.inference.Predictor`).
        inputs: NIfTI files, DICOM series folders, folders of those, or globs (one or a list).
        output_dir: created if missing.
        report_name: report file stem (``.csv`` and ``.json``) in ``output_dir``.
        overwrite: recompute even if a complete output exists.
        qa: also write ``<name>_qa.png`` (input / output, three orthogonal mid slices).
        raise_on_failure: raise after the batch if any input failed.
        shard: this process's share of a ``torchrun`` job (default: read from the environment).
    """

    def __init__(
        self,
        predictor,
        inputs,
        output_dir: str | os.PathLike,
        *,
        report_name: str = "volgan_report",
        overwrite: bool = False,
        qa: bool = False,
        raise_on_failure: bool = True,
        shard: Shard | None = None,
    ):
        self.predictor, self.inputs, self.output_dir = predictor, inputs, Path(output_dir)
        self.report_name, self.overwrite, self.qa = report_name, overwrite, qa
        self.raise_on_failure = raise_on_failure
        self.shard = shard or Shard.from_env()

    def process(self, path: Path, out: Path) -> FileResult:
        start = time.perf_counter()
        rank = self.shard.rank
        if not self.overwrite and is_complete(out):
            return FileResult(str(path), str(out), "skipped", rank=rank)
        remove_stale_partials(out)
        try:
            volume = read_volume(path)
            result = self.predictor.predict(volume)
            write_nifti(result, out)
            if self.qa:
                montage({"input": volume.array, "output": result.array}, out.with_name(f"{nifti_stem(out)}_qa.png"))
        except (VolumeError, ValueError, RuntimeError, OSError, MemoryError) as err:
            message = str(err) if isinstance(err, VolumeError) else f"{path}: {type(err).__name__}: {err}"
            logger.error("failed: %s", message)
            return FileResult(str(path), "", "failed", message, round(time.perf_counter() - start, 3), rank=rank)
        seconds = round(time.perf_counter() - start, 3)
        return FileResult(str(path), str(out), "done", "", seconds, "x".join(map(str, volume.shape)), rank)

    def _prepare_output(self) -> None:
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise VolumeError(self.output_dir, f"output folder cannot be created ({err.strerror or err})") from err
        probe = self.output_dir / f".volgan-write-test-{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise VolumeError(self.output_dir, f"output folder is not writable ({err.strerror or err})") from err

    def run(self) -> list[FileResult]:
        inputs = resolve_inputs(self.inputs)
        if not inputs:
            raise VolumeError(str(self.inputs), "names no NIfTI files or DICOM series folders")
        self._prepare_output()
        # one output name per input, decided over the whole batch so that ranks agree
        targets: dict[str, Path] = {}
        jobs = []
        for path in inputs:
            name = output_name(path)
            jobs.append((path, self.output_dir / name, targets.get(name)))
            targets.setdefault(name, path)
        mine = self.shard.take(jobs)
        prefix = f"rank {self.shard.rank}: " if self.shard.world > 1 else ""
        progress = Progress(len(mine), prefix=prefix)
        results = []
        for path, out, clash in mine:
            if clash is not None:
                result = FileResult(str(path), "", "failed", f"{path}: output name {out.name} is already taken by {clash}; "
                                    "rename one of the inputs", rank=self.shard.rank)
            else:
                result = self.process(path, out)
            results.append(result)
            progress.update(path.name, result.status, result.seconds)
        results = self.shard.gather(results)
        if self.shard.rank == 0:
            write_report(results, self.output_dir, self.report_name)
        failed = [r for r in results if r.status == "failed"]
        logger.info("%d done, %d skipped, %d failed", sum(r.status == "done" for r in results),
                    sum(r.status == "skipped" for r in results), len(failed))
        if failed and self.raise_on_failure:
            lines = "\n".join(f"  {r.error}" for r in failed)
            raise RuntimeError(f"{len(failed)} of {len(results)} input(s) failed:\n{lines}")
        return results
