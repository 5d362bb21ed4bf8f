"""Pair manifests: CSV or JSON files (or a folder pattern) listing each subject's source, target and mask.

CSV: a header row with ``subject,source,target`` and optionally ``mask`` and ``align``. JSON: a list
of objects with those keys, or ``{"pairs": [...]}``. Relative paths are relative to the manifest's
folder. :func:`load_manifest` reports every problem at once, before any training starts.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

from volgan.data.paired_subject import ALIGN_MODES, PairedSubject
from volgan.io import VolumeError

COLUMNS = ("subject", "source", "target", "mask", "align")
REQUIRED = ("source", "target")


class ManifestError(ValueError):
    """Every problem found in a manifest, one per line."""

    def __init__(self, manifest: str | os.PathLike, problems: list[str]):
        self.problems = problems
        super().__init__(f"{os.fspath(manifest)}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))


def _rows(path: Path, required: tuple[str, ...]) -> list[dict]:
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        rows = data.get("pairs") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ManifestError(path, ['expected a list of {"subject", "source", "target"} objects or {"pairs": [...]}'])
        return rows
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"subject", *required} - set(reader.fieldnames or ())
            if missing:
                raise ManifestError(path, [f"the header row lacks column(s) {sorted(missing)}; found {reader.fieldnames}"])
            return list(reader)
    raise ManifestError(path, ["a manifest must be a .csv or .json file"])


def read_manifest(path: str | os.PathLike, required: tuple[str, ...] = REQUIRED) -> list[PairedSubject]:
    """The pairs listed in a manifest, with paths resolved (unchecked: see :func:`load_manifest`)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, ["the manifest file does not exist"])
    root = path.parent
    pairs = []
    for row in _rows(path, required):
        values = {k: str(row.get(k) or "").strip() for k in COLUMNS}
        for key in ("source", "target", "mask"):
            if values[key] and not os.path.isabs(values[key]):
                values[key] = str(root / values[key])
        pairs.append(PairedSubject(values["subject"], values["source"], values["target"], values["mask"] or None,
                                   values["align"] or "auto"))
    return pairs


def problems_in(pairs: list[PairedSubject], *, read: bool = True, required: tuple[str, ...] = REQUIRED) -> list[str]:
    """Every problem: empty ``required`` fields, duplicate subjects, missing files, unknown align
    modes and (with ``read``) volumes that cannot be read."""
    problems, seen = [], {}
    for i, pair in enumerate(pairs, start=1):
        name = pair.subject or f"row {i}"
        if not pair.subject:
            problems.append(f"row {i}: empty subject")
        elif pair.subject in seen:
            problems.append(f"{name}: duplicate subject (rows {seen[pair.subject]} and {i})")
        seen.setdefault(pair.subject, i)
        if pair.align not in ALIGN_MODES:
            problems.append(f"{name}: align must be one of {ALIGN_MODES}, got {pair.align!r}")
        for role in ("source", "target", "mask"):
            path = getattr(pair, role)
            if not path:
                if role in required:
                    problems.append(f"{name}: empty {role}")
            elif not os.path.exists(path):
                problems.append(f"{name}: {role} {path} does not exist")
            elif read:
                try:
                    pair.volume(role)
                except VolumeError as err:
                    problems.append(f"{name}: {role} {err}")
    return problems


def load_manifest(path: str | os.PathLike, *, read: bool = True, required: tuple[str, ...] = REQUIRED) -> list[PairedSubject]:
    """Read and check a manifest; raise :class:`ManifestError` listing every problem, if any."""
    pairs = read_manifest(path, required)
    problems = problems_in(pairs, read=read, required=required) if pairs else ["lists no pairs"]
    if problems:
        raise ManifestError(path, problems)
    return pairs


def manifest_targets(path: str | os.PathLike) -> list[str]:
    """The checked ``target`` volumes of a manifest whose ``source`` column may be empty, e.g. the
    clean volumes a denoising bundle synthesises its noisy sources from."""
    return [p.target for p in load_manifest(path, required=("target",))]


def pairs_from_pattern(root: str | os.PathLike, source: str, target: str, mask: str | None = None) -> list[PairedSubject]:
    """Pairs found under ``root`` from patterns with a ``{subject}`` field, e.g.
    ``source="{subject}/ldpet.nii.gz", target="{subject}/fdpet.nii.gz"``. Subjects are those whose
    source exists; a missing target or mask is left for :func:`problems_in` to report."""
    if source.count("{subject}") != 1:
        raise ValueError(f"the source pattern must hold {{subject}} once, got {source!r}")
    root = Path(root)
    head, tail = source.split("{subject}")
    regex = re.compile(re.escape(head) + r"(?P<subject>[^/]+)" + re.escape(tail) + r"$")
    pairs = []
    for path in sorted(root.glob(source.replace("{subject}", "*"))):
        match = regex.match(path.relative_to(root).as_posix())
        if match:
            s = match["subject"]
            pairs.append(PairedSubject(s, str(path), str(root / target.format(subject=s)),
                                       str(root / mask.format(subject=s)) if mask else None))
    return pairs


def write_manifest(pairs: list[PairedSubject], path: str | os.PathLike) -> Path:
    """Save pairs as a CSV manifest (absolute paths)."""
    path = Path(path)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for p in pairs:
            writer.writerow({"subject": p.subject, "source": os.path.abspath(p.source), "target": os.path.abspath(p.target),
                             "mask": os.path.abspath(p.mask) if p.mask else "", "align": p.align})
    return path
