"""Run a predictor over many volumes: one output per input, resumable with provenance checks,
per-file errors, sharded, and safe with concurrent runs on one output folder."""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from volgan.inference.inputs import broken_link, check_output_apart, input_locations, output_name, resolve_inputs
from volgan.io.montage import montage
from volgan.inference.progress import Progress
from volgan.inference.provenance import describe_model, mismatch, predictor_options, sha256_file, sha256_input
from volgan.inference.run_lock import HOST, FileLock, process_alive
from volgan.inference.run_report import RunReport
from volgan.inference.sharding import Shard
from volgan.inference.value_range import ValueRangeCheck
from volgan.io import VolumeError, nifti_stem, read_nifti, read_volume, write_nifti

logger = logging.getLogger(__name__)

PARTIAL = re.compile(r"\.partial-(?:(?P<host>.+)-)?(?P<pid>\d+)(?:\.nii(?:\.gz)?)?$")


@dataclass
class FileResult:
    """Outcome for one input: ``status`` is ``done``, ``skipped`` (an output made by the same job
    existed) or ``failed``. ``warning`` names values the model cannot represent. The hashes, the
    model and the options record what the output was made from (the provenance a re-run checks)."""

    input: str
    output: str
    status: str
    error: str = ""
    seconds: float = 0.0
    shape: str = ""
    rank: int = 0
    warning: str = ""
    run: str = ""
    input_sha256: str = ""
    output_sha256: str = ""
    model: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


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
    """Delete temporary files of ``output`` left by this process or by a process of this machine
    that no longer runs (e.g. after ``kill -9``); those of running processes stay."""
    for partial in output.parent.glob(f".{nifti_stem(output)}.partial-*"):
        match = PARTIAL.search(partial.name)
        if match is None or match["host"] not in (None, HOST):
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or not process_alive(pid):
            partial.unlink(missing_ok=True)


class BatchRunner:
    """Apply ``predictor`` to every input volume and write the results to ``output_dir``.

    Outputs are NIfTI files named after the inputs, written atomically (temporary name + rename),
    so an interrupted run never leaves a truncated file under the final name. An output folder
    that overlaps the inputs is refused before any work, and no output is written over an input.

    The JSON report records, for each output, the input's and the output's SHA-256, the model
    and the options that change the result. A re-run skips an output only if that record matches
    the job and the file is unchanged; an output made from another input, by another model or
    with other options (or one without a record) is reported as a conflict, or recomputed with
    ``overwrite``. Damaged outputs and ones whose write was interrupted are recomputed.

    Several runs may share one output folder: each output is made under a lock file
    (``.NAME.lock``, holding the writer's host and pid) by one run, while the others go on with
    other inputs and come back to it at the end; each run removes only its own temporary files
    or those of processes that no longer run; every run merges its rows into one report.

    Voxels the model cannot return (below its output floor, e.g. negatives into a network with a
    final ReLU) or a DICOM modality other than ``modality`` are reported as a warning in the log
    and the report, or as a failure of that file with ``strict``.

    A file that fails is reported with the reason and the others go on. Under ``torchrun`` each
    process takes every N-th input. If anything failed and ``raise_on_failure``,
    :class:`RuntimeError` lists the failures after the batch.

    Args:
        predictor: object with ``predict(Volume) -> Volume`` (e.g. :class:`~volgan.inference.Predictor`).
        inputs: NIfTI files, DICOM series folders, folders of those, or globs (one or a list).
        output_dir: created if missing.
        report_name: report file stem (``.csv`` and ``.json``) in ``output_dir``.
        overwrite: recompute even if an output exists, whatever made it.
        qa: also write ``<name>_qa.png`` (input / output, three orthogonal mid slices).
        raise_on_failure: raise after the batch if any input failed.
        shard: this process's share of a ``torchrun`` job (default: read from the environment).
        model: the model identity recorded with each output (e.g. a bundle's folder and its
            config and weights hashes, :func:`~volgan.inference.provenance.bundle_model`);
            default: the predictor's class and a hash of its network's parameters.
        modality: the modality the model is for (DICOM ``Modality``, e.g. ``"MR"``), if known.
        strict: fail a file with values the model cannot represent instead of warning.
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
        model: dict[str, Any] | None = None,
        modality: str | None = None,
        strict: bool = False,
    ):
        self.predictor, self.inputs, self.output_dir = predictor, inputs, Path(output_dir)
        self.report_name, self.overwrite, self.qa = report_name, overwrite, qa
        self.raise_on_failure = raise_on_failure
        self.shard = shard or Shard.from_env()
        self.model, self.strict = model, strict
        self.check_values = ValueRangeCheck(predictor, modality)
        self.report = RunReport(self.output_dir, report_name)
        self.run_id = f"{HOST}:{os.getpid()}"
        self._inputs: set[Path] = set()
        self.options: dict[str, Any] = {}

    def _result(self, path: Path, out: Path | str, status: str, error: str = "", **fields) -> FileResult:
        return FileResult(str(path), str(out), status, error, rank=self.shard.rank, run=self.run_id, **fields)

    def process(self, path: Path, out: Path, *, wait: bool = True) -> FileResult | None:
        """Make ``out`` from ``path`` under the output's lock; None if another run holds it and not ``wait``."""
        if Path(os.path.realpath(out)) in self._inputs:
            message = f"{path}: its output {out} is an input; nothing written"
            return self._record(self._result(path, "", "failed", message))
        lock = FileLock(out.with_name(f".{out.name}.lock"))
        while not lock.try_acquire():
            holder = lock.holder()
            if not wait:
                return None
            if holder is not None and holder.host != HOST:
                return self._record(self._result(
                    path, "", "failed", f"{path}: its output {out} is being written by {holder} (lock file "
                    f"{lock.path}); delete the lock file if that run has ended"))
            time.sleep(0.5)
        try:
            # recorded before the lock is released: the next run that takes it sees the new record
            return self._record(self._process_locked(path, out))
        finally:
            lock.release()

    def _record(self, result: FileResult) -> FileResult:
        self.report.update([asdict(result)])
        return result

    def _existing(self, out: Path, input_sha256: str) -> tuple[str, dict[str, Any] | None]:
        """What to do with an existing ``out``: ("skip", record), ("redo", record) or (conflict, record)."""
        record = self.report.record_for(out)
        if record is not None and record.get("status") == "writing":
            return "redo", record  # its write was interrupted
        if record is not None and record.get("output_sha256"):
            reason = mismatch(record, input_sha256=input_sha256, model=self.model, options=self.options)
            if not reason and out.is_file() and sha256_file(out) == record["output_sha256"]:
                return "skip", record
        if not is_complete(out):
            return "redo", record  # damaged or truncated: nothing of value is replaced
        if record is None or not record.get("output_sha256"):
            reason = f"has no record in {self.report.json_path} (made by another program, or the report was removed)"
        elif sha256_file(out) != record["output_sha256"]:
            reason = "was changed since volgan wrote it"
        return reason, record

    def _process_locked(self, path: Path, out: Path) -> FileResult:
        start = time.perf_counter()
        problem = broken_link(path)
        if problem:
            return self._result(path, "", "failed", f"{path}: {problem}")
        try:
            input_sha256 = sha256_input(path)
        except OSError:
            input_sha256 = ""  # unreadable: reading the volume below reports why
        provenance = {"input_sha256": input_sha256, "model": self.model, "options": self.options}
        if input_sha256 and os.path.lexists(out):
            decision, record = self._existing(out, input_sha256)
            if decision == "skip":
                kept = {k: record.get(k, "") for k in ("shape", "warning", "output_sha256")}
                return self._result(path, out, "skipped", **provenance, **kept)
            if decision != "redo" and not self.overwrite:
                claim = {}
                if record is not None and os.path.abspath(record["input"]) == os.path.abspath(path):
                    claim = {k: record.get(k) for k in ("output", "input_sha256", "output_sha256", "model", "options",
                                                        "shape")}
                message = f"{path}: output {out} {decision}; --overwrite replaces it"
                logger.error("conflict: %s", message)
                return FileResult(**{**asdict(self._result(path, "", "failed", message)), **claim})
        remove_stale_partials(out)
        try:
            volume = read_volume(path)
            warning = self.check_values(volume)
            if warning and self.strict:
                raise VolumeError(path, f"{warning.removeprefix(f'{path}: ')} (--strict)")
            if warning:
                logger.warning("%s", warning)
            shape = "x".join(map(str, volume.shape))
            self.report.update([asdict(self._result(path, out, "writing", shape=shape, **provenance))])
            result = self.predictor.predict(volume)
            write_nifti(result, out)
            output_sha256 = sha256_file(out)
            if self.qa:
                montage({"input": volume.array, "output": result.array}, out.with_name(f"{nifti_stem(out)}_qa.png"))
        except (VolumeError, ValueError, RuntimeError, OSError, MemoryError) as err:
            message = str(err) if isinstance(err, VolumeError) else f"{path}: {type(err).__name__}: {err}"
            logger.error("failed: %s", message)
            return self._result(path, "", "failed", message, seconds=round(time.perf_counter() - start, 3),
                                input_sha256=input_sha256)
        seconds = round(time.perf_counter() - start, 3)
        return self._result(path, out, "done", seconds=seconds, shape=shape, warning=warning,
                            output_sha256=output_sha256, **provenance)

    def _prepare_output(self) -> None:
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise VolumeError(self.output_dir, f"output folder cannot be created ({err.strerror or err})") from err
        probe = self.output_dir / f".volgan-write-test-{HOST}-{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise VolumeError(self.output_dir, f"output folder is not writable ({err.strerror or err})") from err

    @staticmethod
    def _finish(result: FileResult, progress: Progress, results: list[FileResult]) -> None:
        results.append(result)
        progress.update(Path(result.input).name, result.status, result.seconds)

    def run(self) -> list[FileResult]:
        inputs = resolve_inputs(self.inputs)
        if not inputs:
            raise VolumeError(str(self.inputs), "names no NIfTI files or DICOM series folders")
        check_output_apart(self.output_dir, input_locations(self.inputs, inputs))
        self._inputs = {Path(os.path.realpath(p)) for p in inputs}
        self._prepare_output()
        if self.model is None:
            self.model = describe_model(self.predictor)
        self.options = predictor_options(self.predictor)
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
        results: list[FileResult] = []
        deferred = []
        for path, out, clash in mine:
            if clash is not None:
                result = self._record(self._result(
                    path, "", "failed", f"{path}: output name {out.name} is already taken by {clash}; rename one of "
                    "the inputs"))
            else:
                result = self.process(path, out, wait=False)
            if result is None:  # another run is making this output: come back to it at the end
                deferred.append((path, out))
                continue
            self._finish(result, progress, results)
        for path, out in deferred:
            self._finish(self.process(path, out), progress, results)
        results = self.shard.gather(results)
        failed = [r for r in results if r.status == "failed"]
        logger.info("%d done, %d skipped, %d failed", sum(r.status == "done" for r in results),
                    sum(r.status == "skipped" for r in results), len(failed))
        if failed and self.raise_on_failure:
            lines = "\n".join(f"  {r.error}" for r in failed)
            raise RuntimeError(f"{len(failed)} of {len(results)} input(s) failed:\n{lines}")
        return results
