"""Names the MONAI Label app accepts from HTTP clients: image ids, label tags and volume files.

An id or tag is a single file name, never a path: it has no separator, is not ``.`` or ``..``,
does not start with a dot, has no NUL or control character and fits in one path component.
Every path the app builds from one is also checked, after resolving links, to lie directly in
the folder it was built in (:func:`confined`). Nothing here imports MONAI Label.
"""

from __future__ import annotations

import os
from pathlib import Path

VOLUME_EXTENSIONS = (".nii.gz", ".nii")
"""File name endings the datastore stores and serves (longest first)."""

MAX_NAME = 200


class BadName(ValueError):
    """A client-supplied id, tag or file name that is not a plain volume name (HTTP 400)."""


class OutsideStudies(PermissionError):
    """A path that resolves outside the studies folder (HTTP 403)."""


def check_name(value: object, what: str = "image id") -> str:
    """``value`` if it is a plain file name usable inside the studies folder.

    Args:
        value: the name a client sent.
        what: what it names, for the error message ("image id", "label tag", ...).

    Raises:
        BadName: a path (separator, ``..``, absolute), an empty or hidden name, a NUL or other
            control character, or a name too long for one path component.
    """
    if not isinstance(value, str) or not value:
        raise BadName(f"{what} is missing")
    if "/" in value or "\\" in value or (os.altsep and os.altsep in value):
        raise BadName(f"{what} {value!r} is a path; ids are plain names without separators")
    if value in (".", "..") or value.startswith("."):
        raise BadName(f"{what} {value!r}: names must not start with a dot")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadName(f"{what} {value!r} contains a NUL or control character")
    if len(value.encode("utf-8", "surrogateescape")) > MAX_NAME:
        raise BadName(f"{what} is longer than {MAX_NAME} bytes")
    return value


def volume_extension(filename: str | None) -> str:
    """The volume extension (``.nii.gz`` or ``.nii``) that ``filename`` ends with.

    Raises:
        BadName: any other ending (the datastore holds NIfTI volumes only).
    """
    name = (filename or "").lower()
    for ext in VOLUME_EXTENSIONS:
        if name.endswith(ext) and len(name) > len(ext):
            return ext
    raise BadName(f"{filename!r}: not a volume file; accepted endings: {', '.join(VOLUME_EXTENSIONS)}")


def confined(folder: str | os.PathLike, name: str) -> Path:
    """``folder / name``, checked to resolve (links followed) to an entry directly in ``folder``.

    Raises:
        BadName: ``name`` is not a plain name (see :func:`check_name`).
        OutsideStudies: ``folder / name`` is a link, or lies under a link, that leads out of
            ``folder``.
    """
    check_name(name, "file name")
    root = Path(folder).resolve()
    path = root / name
    if path.resolve().parent != root:
        raise OutsideStudies(f"{path}: resolves to {path.resolve()}, outside {root}")
    return path
