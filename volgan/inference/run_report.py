"""The report of an output folder (``volgan_report.csv`` and ``.json``): one row per input of every
run that wrote there, updated under a lock file so that concurrent runs merge their rows.

The JSON report is also the folder's provenance record: each output's row holds the input's and
the output's content hashes, the model and the options it was made with.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from volgan.inference.run_lock import HOST, FileLock

logger = logging.getLogger(__name__)

CSV_FIELDS = ("input", "output", "status", "error", "warning", "seconds", "shape", "rank", "run",
              "input_sha256", "output_sha256")


def row_key(row: dict[str, Any]) -> str:
    return os.path.abspath(row["input"])


class RunReport:
    """``folder/stem.json`` (every field) and ``folder/stem.csv`` (:data:`CSV_FIELDS`).

    :meth:`update` merges rows into the report under ``.stem.lock``: a row replaces the row of the
    same input; a row that claims an output takes it away from any other input's row (that row is
    marked ``superseded``). Rows of other inputs, from earlier or concurrent runs, stay.
    """

    def __init__(self, folder: str | os.PathLike, stem: str):
        self.folder, self.stem = Path(folder), stem
        self.json_path, self.csv_path = self.folder / f"{stem}.json", self.folder / f"{stem}.csv"
        self.lock_path = self.folder / f".{stem}.lock"

    def rows(self) -> list[dict[str, Any]]:
        """The rows now in the JSON report (none if it is missing or unreadable)."""
        try:
            data = json.loads(self.json_path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as err:
            logger.warning("%s: unreadable report, started afresh (%s)", self.json_path, err)
            return []
        return [r for r in data if isinstance(r, dict) and "input" in r] if isinstance(data, list) else []

    def record_for(self, output: str | os.PathLike) -> dict[str, Any] | None:
        """The row whose output is ``output`` (its file name in this folder), if any."""
        name = Path(output).name
        for row in self.rows():
            if row.get("output") and Path(row["output"]).name == name and row.get("status") != "superseded":
                return row
        return None

    def update(self, new_rows: Iterable[dict[str, Any]]) -> None:
        new_rows = [dict(r, input=os.path.abspath(r["input"])) for r in new_rows]
        with FileLock(self.lock_path):
            rows = {row_key(r): r for r in self.rows()}
            for row in new_rows:
                claimed = Path(row["output"]).name if row.get("output") else ""
                if claimed:
                    for key, other in rows.items():
                        if (key != row_key(row) and other.get("output") and Path(other["output"]).name == claimed
                                and other.get("status") != "superseded"):
                            rows[key] = dict(other, status="superseded", output="",
                                             error=f"its output {claimed} was replaced by the output of {row['input']}")
                rows[row_key(row)] = row
            self._write(list(rows.values()))

    def _write(self, rows: list[dict[str, Any]]) -> None:
        suffix = f".partial-{HOST}-{os.getpid()}"
        tmp_json = self.json_path.with_name(f".{self.json_path.name}{suffix}")
        tmp_csv = self.csv_path.with_name(f".{self.csv_path.name}{suffix}")
        try:
            with open(tmp_json, "w") as f:
                json.dump(rows, f, indent=1)
            with open(tmp_csv, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
            os.replace(tmp_csv, self.csv_path)
            os.replace(tmp_json, self.json_path)
        finally:
            tmp_json.unlink(missing_ok=True)
            tmp_csv.unlink(missing_ok=True)
