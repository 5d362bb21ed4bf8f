"""Turn command-line inputs (files, folders, globs, DICOM series folders) into a list of volumes."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from volgan.io import is_nifti, nifti_stem


def is_series_folder(folder: Path) -> bool:
    """A folder is one DICOM series if it holds files and none of them is NIfTI."""
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return bool(files) and not any(is_nifti(p) for p in files)


def folder_inputs(folder: Path) -> list[Path]:
    """NIfTI files and sub-folders (DICOM series) directly in ``folder``, sorted by name."""
    return sorted(
        p for p in folder.iterdir() if not p.name.startswith(".") and ((p.is_file() and is_nifti(p)) or p.is_dir())
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


def output_name(path: str | os.PathLike) -> str:
    """``scan.nii.gz`` -> ``scan.nii.gz``; ``scan.nii`` -> ``scan.nii.gz``; DICOM folder ``s1`` -> ``s1.nii.gz``."""
    p = Path(path)
    return f"{nifti_stem(p) if is_nifti(p) else p.name}.nii.gz"
