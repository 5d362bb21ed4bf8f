"""MONAI datasets of aligned pairs: load and align once (cached), then identical random patches.

Items are dicts with ``subject``, ``source``, ``target`` and optional ``mask``/``align`` paths (see
:func:`items`). :class:`LoadAlignedPaird` brings each pair onto its target grid; every random
transform after it is applied with one draw to ``source``, ``target`` and ``mask`` together.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from monai.data import CacheDataset, PersistentDataset
from monai.transforms import Compose, RandCropByPosNegLabeld, RandFlipd, RandRotate90d, Transform

from volgan.data.foreground import foreground
from volgan.data.paired_subject import AlignSettings, PairedSubject
from volgan.data.transform_cache import TransformCache

KEYS = ("source", "target", "mask")


def items(pairs: Sequence[PairedSubject]) -> list[dict]:
    """Dataset items (plain dicts of paths) for a manifest's pairs."""
    return [{"subject": p.subject, "source": p.source, "target": p.target, "mask": p.mask or "", "align": p.align}
            for p in pairs]


class LoadAlignedPaird(Transform):
    """Paths -> ``source``, ``target`` and ``mask`` as ``(1, X, Y, Z)`` float32 arrays on the target grid.

    ``mask`` is the manifest's mask (target space) or else the target's foreground, restricted to the
    source's field of view, so patches are drawn where both images hold data. A manifest mask keeps
    its labels (rounded): e.g. 1 brain, 2 lesions, for ``RandCropByLabelClassesd`` to oversample. ``affine`` is the
    target's and ``classification`` says how the pair was aligned. ``names`` renames the outputs,
    e.g. ``{"source": "image", "target": "label"}`` for MONAI's supervised engines.
    """

    def __init__(self, settings: AlignSettings = AlignSettings(), transform_cache: str | os.PathLike | None = None,
                 names: dict | None = None):
        self.settings = settings
        self.cache = TransformCache(transform_cache) if transform_cache else None
        self.names = {k: (names or {}).get(k, k) for k in KEYS}

    def __call__(self, item: dict) -> dict:
        subject = PairedSubject(item["subject"], item["source"], item["target"], item.get("mask") or None,
                                item.get("align") or "auto")
        pair = subject.aligned(self.settings, self.cache)
        mask = pair.mask.array if pair.mask is not None else foreground(pair.target.array).astype(np.float32)
        return {
            "subject": pair.subject,
            self.names["source"]: pair.source.array[None].astype(np.float32),
            self.names["target"]: pair.target.array[None].astype(np.float32),
            self.names["mask"]: np.where(pair.inside, mask, 0)[None].astype(np.float32),
            "affine": pair.target.affine,
            "classification": pair.space.kind,
        }


def patch_transforms(patch_size: Sequence[int], num_samples: int = 4, pos: float = 9.0, neg: float = 1.0,
                     flips: bool = True, rotate_in_plane: bool = False) -> list:
    """Foreground-weighted patches (``pos:neg`` centres inside:outside the mask) and geometric
    augmentation drawn once per sample and applied to source, target and mask alike."""
    keys = list(KEYS)
    out: list = [RandCropByPosNegLabeld(keys=keys, label_key="mask", spatial_size=list(patch_size), pos=pos, neg=neg,
                                        num_samples=num_samples, allow_smaller=False)]
    if flips:
        out += [RandFlipd(keys=keys, prob=0.5, spatial_axis=axis) for axis in range(3)]
    if rotate_in_plane:
        out.append(RandRotate90d(keys=keys, prob=0.5, spatial_axes=(0, 1)))
    return out


def paired_dataset(pairs: Sequence[PairedSubject], random_transforms: Sequence = (), *,
                   settings: AlignSettings = AlignSettings(), transform_cache: str | os.PathLike | None = None,
                   cache_dir: str | os.PathLike | None = None, deterministic: Sequence = ()) -> CacheDataset:
    """Aligned pairs, then ``deterministic`` transforms (e.g. normalisers), cached; then ``random_transforms``.

    With ``cache_dir`` a :class:`~monai.data.PersistentDataset` keeps the aligned arrays on disk
    across runs (keyed by the item's paths: clear it when files change in place); otherwise a
    :class:`~monai.data.CacheDataset` keeps them in memory. ``transform_cache`` stores registrations.
    """
    transform = Compose([LoadAlignedPaird(settings, transform_cache), *deterministic, *random_transforms])
    if cache_dir is not None:
        return PersistentDataset(items(pairs), transform, cache_dir=cache_dir)
    return CacheDataset(items(pairs), transform, cache_rate=1.0, num_workers=0, progress=False)
