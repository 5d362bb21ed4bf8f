"""Training data given as folders, checked like a manifest before training starts.

A bundle may take its training volumes from a dataset folder instead of a manifest. The files are
listed here and every one is read and checked with the manifest checker
(:func:`volgan.data.manifest.problems_in`), so a truncated file, a NaN voxel, a 2D image or a
missing partner is reported with its path and reason, all at once, before any network or logger
is made.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from volgan.data.manifest import ManifestError, problems_in
from volgan.data.paired_subject import PairedSubject
from volgan.io import is_nifti


def _nifti_files(folder: Path) -> list[Path]:
    """NIfTI files directly in ``folder`` (sorted, hidden and partial files left out)."""
    return sorted(p for p in folder.iterdir() if is_nifti(p) and not p.name.startswith("."))


def _check(folder: Path, pairs: list[PairedSubject], required: tuple[str, ...], *, same_grid: bool) -> None:
    problems = problems_in(pairs, required=required) if pairs else ["holds no NIfTI files (.nii, .nii.gz)"]
    if same_grid and not problems:
        for pair in pairs:
            source, target = pair.volume("source"), pair.volume("target")
            if source.shape != target.shape:
                problems.append(f"{pair.subject}: source {pair.source} has shape {source.shape} but target "
                                f"{pair.target} has shape {target.shape}; they must share one grid")
    if problems:
        raise ManifestError(folder, problems)


def folder_volumes(folder: str | os.PathLike) -> list[str]:
    """The NIfTI files in ``folder``, each read and checked.

    Raises:
        ManifestError: naming the folder and, one per line, every file that cannot be used and why
            (or that the folder is missing or holds no NIfTI files).

    Examples::

        >>> folder_volumes("data/mr/train")  # doctest: +SKIP
        ['data/mr/train/sub-01.nii.gz', 'data/mr/train/sub-02.nii.gz']
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ManifestError(folder, ["the training data folder does not exist"])
    pairs = [PairedSubject(p.name, "", str(p)) for p in _nifti_files(folder)]
    _check(folder, pairs, ("target",), same_grid=False)
    return [p.target for p in pairs]


def folder_pairs(folder: str | os.PathLike, sources: Sequence[str], target: str) -> list[dict[str, str]]:
    """``{"image", "label"}`` pairs: each NIfTI file in ``folder/<source>/`` for every ``source``,
    with the file of the same name in ``folder/<target>/``; every file read and checked, and each
    pair's two volumes required to share one grid.

    Raises:
        ManifestError: naming the folder and every problem (missing folders or partners, unreadable
            files, pairs of different shapes), one per line.

    Examples::

        >>> folder_pairs("data/sr/train", ["kspace", "thick4_cubic"], "clean")  # doctest: +SKIP
        [{'image': 'data/sr/train/kspace/a.nii.gz', 'label': 'data/sr/train/clean/a.nii.gz'}, ...]
    """
    folder = Path(folder)
    missing = [f"the folder {folder / name} does not exist" for name in (*sources, target) if not (folder / name).is_dir()]
    if missing:
        raise ManifestError(folder, missing)
    pairs = [
        PairedSubject(f"{source}/{p.name}", str(p), str(folder / target / p.name))
        for source in sources
        for p in _nifti_files(folder / source)
    ]
    _check(folder, pairs, ("source", "target"), same_grid=True)
    return [{"image": p.source, "label": p.target} for p in pairs]
