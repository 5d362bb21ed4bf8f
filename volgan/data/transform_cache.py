"""Registration transforms cached on disk, keyed by the content of both images and the settings."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import SimpleITK as sitk

log = logging.getLogger(__name__)


def content_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, or of every file (name and bytes, sorted) in a DICOM folder."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class TransformCache:
    """A folder of ``<key>.tfm`` (ITK text transform, read without executing anything) plus
    ``<key>.json`` (what produced it). The key hashes both files' contents and the settings, so a
    changed image or setting never reuses a stale transform, while a moved or renamed file does."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def key(self, source: str | os.PathLike, target: str | os.PathLike, settings: dict) -> str:
        setting_hash = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
        return f"{content_hash(source)[:16]}_{content_hash(target)[:16]}_{setting_hash[:8]}"

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.tfm"

    def load(self, key: str) -> sitk.Transform | None:
        """The cached transform, or None if absent or unreadable (then it is recomputed)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return sitk.ReadTransform(str(path))
        except RuntimeError as err:
            log.warning("%s: unreadable cached transform, registering again (%s)", path, str(err).strip()[-200:])
            return None

    def save(self, key: str, transform: sitk.Transform, info: dict) -> Path:
        """Write the transform and its provenance atomically (temporary name, then rename)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        tmp = path.with_name(f".{key}.partial-{os.getpid()}.tfm")
        sitk.WriteTransform(transform, str(tmp))
        os.replace(tmp, path)
        path.with_suffix(".json").write_text(json.dumps(info, indent=2, default=str))
        return path
