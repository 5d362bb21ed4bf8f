"""Turn command-line inputs (files, folders, globs, DICOM series folders) into a list of volumes."""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Iterable
from pathlib import Path

from volgan.io import VolumeError, is_nifti, nifti_stem


def is_series_folder(folder: Path) -> bool:
    """A folder is one DICOM series if it holds files and none of them is NIfTI."""
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return bool(files) and not any(is_nifti(p) for p in files)


def broken_link(path: str | os.PathLike) -> str:
    """Why ``path`` is a symbolic link that leads nowhere ("" if it is not one)."""
    path = Path(path)
    if not path.is_symlink():
        return ""
    try:
        path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "is a symbolic link loop"
        return f"is a broken symbolic link (to {os.readlink(path)}, which does not exist)"
    return ""


def folder_inputs(folder: Path) -> list[Path]:
    """NIfTI files and sub-folders (DICOM series) directly in ``folder``, sorted by name.

    Broken symbolic links with a NIfTI name or no suffix (a series folder's name) are listed too,
    so that the batch reports them instead of silently leaving them out.
    """
    return sorted(
        p for p in folder.iterdir() if not p.name.startswith(".")
        and ((p.is_file() and is_nifti(p)) or p.is_dir() or (broken_link(p) and (is_nifti(p) or not p.suffix)))
    )


def _expand(spec: str | os.PathLike) -> list[Path]:
    path = Path(spec)
    if path.is_dir():
        return [path] if is_series_folder(path) else folder_inputs(path)
    if path.exists() or not glob.has_magic(str(spec)):
        return [path]  # missing paths are kept: reading them reports the problem with the batch
    matches = sorted(glob.glob(str(spec)))
    return [m for match in matches for m in _expand(match)] if matches else [path]


def resolve_inputs(specs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Every volume named by ``specs``, in order, without duplicates.

    A spec is a NIfTI file, a DICOM series folder (a folder of non-NIfTI files), a folder of NIfTI
    files and/or DICOM series sub-folders, or a glob of any of these. A spec naming nothing is
    returned as is, so the batch reports it as a failed input instead of silently skipping it.
    """
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    seen, out = set(), []
    for spec in specs:
        for path in _expand(spec):
            key = os.path.abspath(path)
            if key not in seen:
                seen.add(key)
                out.append(path)
    return out


def input_locations(specs: str | os.PathLike | Iterable[str | os.PathLike], inputs: Iterable[Path]) -> list[Path]:
    """Every place the inputs come from, links resolved: each resolved input and each folder spec."""
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    places = [Path(p) for p in inputs] + [Path(s) for s in specs if Path(s).is_dir()]
    return list(dict.fromkeys(Path(os.path.realpath(p)) for p in places))


def check_output_apart(output_dir: str | os.PathLike, locations: Iterable[Path]) -> None:
    """Raise :class:`VolumeError` if ``output_dir`` overlaps an input location (links resolved).

    Refused: an output folder that is, contains or lies inside an input folder (or DICOM series
    folder), and one that is or contains the folder of an input file. An output folder below the
    folder of an input file is allowed (``volgan infer B scan.nii.gz -o out``).
    """
    out = Path(os.path.realpath(output_dir))
    for place in locations:
        if place.is_dir():
            relation = ("is" if out == place else "lies inside" if place in out.parents
                        else "contains" if out in place.parents else "")
            what = "input folder"
        else:
            relation = "is the folder of" if out == place.parent else "contains" if out in place.parents else ""
            what = "input"
        if relation:
            raise VolumeError(output_dir, f"output folder {relation} {what} {place}: outputs could replace inputs or "
                                          "be read back as inputs; choose an output folder apart from the inputs")


def output_name(path: str | os.PathLike) -> str:
    """``scan.nii.gz`` -> ``scan.nii.gz``; ``scan.nii`` -> ``scan.nii.gz``; DICOM folder ``s1`` -> ``s1.nii.gz``."""
    p = Path(path)
    return f"{nifti_stem(p) if is_nifti(p) else p.name}.nii.gz"
