"""Errors raised when a volume cannot be read, validated or written."""

from __future__ import annotations

import os


class VolumeError(ValueError):
    """A volume file (or DICOM folder) that volgan cannot use.

    The message always starts with the path and then says what is wrong, so a batch report
    or a log line is enough to find and fix the file.

    Args:
        path: the file or folder concerned.
        problem: what is wrong with it, in words a user can act on.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
