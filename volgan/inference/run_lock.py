"""Files that belong to a process: lock files made with ``O_CREAT | O_EXCL``, and the test of
whether the process that made a lock or a temporary file is still running."""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

HOST = socket.gethostname()


def _stat(pid: int) -> list[str]:
    """Fields 3 onwards of ``/proc/PID/stat`` (Linux; empty elsewhere or for no such process)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def process_start(pid: int) -> str:
    """The start time of process ``pid`` in clock ticks since boot (Linux), or "" where unknown.

    With the pid it names one process: a pid that the system reused for another process has
    another start time.
    """
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""  # field 22


def process_alive(pid: int, start: str = "") -> bool:
    """True if process ``pid`` of this machine runs (and, if ``start`` is given and known, is the same process)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    fields = _stat(pid)
    if fields and fields[0] in ("Z", "X"):
        return False  # ended, not yet reaped by its parent
    if start and len(fields) > 19:
        return fields[19] == start
    return True


@dataclass(frozen=True)
class Owner:
    """The process that holds a lock: ``host``, ``pid`` and the process's start time."""

    host: str
    pid: int
    start: str = ""

    @classmethod
    def me(cls) -> Owner:
        return cls(HOST, os.getpid(), process_start(os.getpid()))

    def alive(self) -> bool:
        """Whether the owner may still run: always True for a process on another machine."""
        return self.host != HOST or process_alive(self.pid, self.start)

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}"


def read_owner(lock: Path) -> Owner | None:
    """The owner recorded in ``lock``; None if it is gone or unreadable (being written)."""
    try:
        data = json.loads(lock.read_text())
        return Owner(str(data["host"]), int(data["pid"]), str(data.get("start", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class FileLock:
    """A lock file owned by this process, created with ``O_CREAT | O_EXCL``.

    The file records the owner's host, pid and start time. A lock whose owner on this machine no
    longer runs is stale and taken over; a lock held by a process on another machine is never
    taken over (its owner's liveness cannot be checked from here).

    Examples::

        >>> lock = FileLock(Path(folder) / ".scan.nii.gz.lock")
        >>> if lock.try_acquire():
        ...     try:
        ...         ...  # write scan.nii.gz
        ...     finally:
        ...         lock.release()
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.owner = Owner.me()
        self.held = False

    def holder(self) -> Owner | None:
        """Who holds the lock now (None: nobody, or it is being created)."""
        return read_owner(self.path)

    def try_acquire(self) -> bool:
        """Take the lock if it is free or stale; False if a running process holds it."""
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._remove_if_stale():
                    return False
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"host": self.owner.host, "pid": self.owner.pid, "start": self.owner.start}, f)
            self.held = True
            return True
        return False

    def acquire(self, poll: float = 0.2) -> None:
        """Wait until the lock is taken (for short critical sections such as a report update)."""
        while not self.try_acquire():
            time.sleep(poll)

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _remove_if_stale(self) -> bool:
        """Remove the lock if its owner is gone; True if the caller should try again."""
        owner = read_owner(self.path)
        if owner is None:
            if not self.path.exists():
                return True
            # being written (a few microseconds), or left empty by a process killed while writing it
            time.sleep(0.05)
            owner = read_owner(self.path)
            if owner is None:
                try:
                    if time.time() - self.path.stat().st_mtime < 5.0:
                        return False
                except FileNotFoundError:
                    return True
        elif owner.alive():
            return False
        # move it aside first: a process that took the lock meanwhile keeps it
        aside = self.path.with_name(f"{self.path.name}.stale-{self.owner.host}-{self.owner.pid}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True
        moved = read_owner(aside)
        if moved is not None and moved != owner and moved.alive():
            try:
                os.link(aside, self.path)  # put back the live lock that was taken in between
            except OSError as err:
                if err.errno != errno.EEXIST:
                    raise
        aside.unlink(missing_ok=True)
        return True
