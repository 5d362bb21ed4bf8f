"""One line per finished volume: count, status, time, elapsed and estimated time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Prints ``[3/10] scan.nii.gz done in 12.3 s | elapsed 0:37 | ETA 1:26`` after each volume.

    The ETA averages the time of volumes actually processed (skipped ones cost nothing). Plain
    lines rather than a redrawn bar, so the output is readable in logs and under ``torchrun``.
    """

    def __init__(self, total: int, *, prefix: str = "", stream: TextIO | None = None):
        self.total, self.prefix, self.stream = total, prefix, stream or sys.stderr
        self.done = 0
        self.worked, self.work_seconds = 0, 0.0
        self.start = time.perf_counter()

    def update(self, name: str, status: str, seconds: float) -> str:
        self.done += 1
        if status != "skipped":
            self.worked += 1
            self.work_seconds += seconds
        elapsed = time.perf_counter() - self.start
        left = self.total - self.done
        eta = _clock(left * self.work_seconds / self.worked) if self.worked else "?"
        line = (f"{self.prefix}[{self.done}/{self.total}] {name} {status}"
                f"{f' in {seconds:.1f} s' if status != 'skipped' else ''} | elapsed {_clock(elapsed)} | ETA {eta if left else '0:00'}")
        print(line, file=self.stream, flush=True)
        return line
