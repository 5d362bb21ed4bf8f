"""Data: pair manifests, alignment (space check, cached registration), paired patch sampling, normalisers."""

from __future__ import annotations

from volgan.data.manifest import (
    ManifestError,
    load_manifest,
    manifest_targets,
    pairs_from_pattern,
    read_manifest,
    write_manifest,
)
from volgan.data.modality_normalise import HuWindow, Normalised, ScaleBySuvd, SuvScaler, WindowScale, normaliser_for
from volgan.data.normalise import LinearScale, PercentileScaler, ScaleByPercentiled
from volgan.data.paired_dataset import LoadAlignedPaird, items, paired_dataset, patch_transforms
from volgan.data.paired_subject import AlignedPair, AlignSettings, PairedSubject, PairError, RegistrationQualityError
from volgan.data.training_folders import folder_pairs, folder_volumes

__all__ = [
    "AlignSettings",
    "AlignedPair",
    "HuWindow",
    "LinearScale",
    "LoadAlignedPaird",
    "ManifestError",
    "Normalised",
    "PairError",
    "PairedSubject",
    "PercentileScaler",
    "RegistrationQualityError",
    "ScaleByPercentiled",
    "ScaleBySuvd",
    "SuvScaler",
    "WindowScale",
    "folder_pairs",
    "folder_volumes",
    "items",
    "load_manifest",
    "manifest_targets",
    "normaliser_for",
    "paired_dataset",
    "pairs_from_pattern",
    "patch_transforms",
    "read_manifest",
    "write_manifest",
]
