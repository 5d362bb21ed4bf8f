"""What an output was made from: the input's content hash, the model and the options that change
the result, and the output's own hash; and whether an existing output matches a new job."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

CHUNK = 1 << 20


def inner_predictor(predictor: Any) -> Any:
    """The innermost same-grid predictor inside wrappers (objects with a ``predictor``, e.g.
    :class:`~volgan.inference.target_grid.TargetGridPredictor`)."""
    while getattr(predictor, "predictor", None) is not None:
        predictor = predictor.predictor
    return predictor

# predictor attributes that change an output's values (beyond rounding differences between
# devices and backends, which are not recorded so that a re-run elsewhere still resumes)
RESULT_OPTIONS = ("fast", "precision", "roi_size", "overlap", "mode", "max_window", "margin", "fp32_share",
                  "edge_margin")


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_input(path: str | os.PathLike) -> str:
    """SHA-256 of an input: a file's bytes, or a DICOM folder's file names and bytes (sorted, hidden files left out)."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(file.name.encode() + b"\0" + sha256_file(file).encode())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """``value`` as JSON types (tuples as lists, dtypes and devices as text)."""
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, (np.integer, np.floating)):
        return _plain(value.item())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def predictor_options(predictor: Any) -> dict[str, Any]:
    """The options of ``predictor`` that change its outputs: the window and precision settings it
    resolved (:data:`RESULT_OPTIONS`) and its normaliser's class and settings. For a wrapper (an
    object with a ``predictor``, e.g. one that resamples), its own settings and its predictor's."""
    inner = getattr(predictor, "predictor", None)
    if inner is not None:
        own = {k: _plain(v) for k, v in vars(predictor).items() if k != "predictor" and not k.startswith("_")}
        options = predictor_options(inner)
        options["wrappers"] = [{"class": type(predictor).__name__, **own}, *options.get("wrappers", [])]
        return options
    options = {name: _plain(getattr(predictor, name)) for name in RESULT_OPTIONS if hasattr(predictor, name)}
    normaliser = getattr(predictor, "normaliser", None)
    if normaliser is not None:
        settings = {k: v for k, v in vars(normaliser).items() if not k.startswith("_")}
        options["normaliser"] = {"class": type(normaliser).__name__, **_plain(settings)}
    return options


def network_sha256(predictor: Any) -> str:
    """SHA-256 of the parameters and buffers of ``predictor.network`` ("" without a torch network).

    For a predictor built in code; a bundle's weights are identified by their file's hash instead.
    """
    network = getattr(inner_predictor(predictor), "network", None)
    state_dict = getattr(network, "state_dict", None)
    if state_dict is None:
        return ""
    digest = hashlib.sha256()
    for name, tensor in sorted(state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def describe_model(predictor: Any) -> dict[str, Any]:
    """The model identity recorded for outputs of a predictor built in code."""
    network = getattr(inner_predictor(predictor), "network", None)
    return {"predictor": type(predictor).__name__, "network": type(network).__name__,
            "weights_sha256": network_sha256(predictor)}


def bundle_model(bundle: str | os.PathLike, checkpoint: str | os.PathLike | None) -> dict[str, Any]:
    """The model identity of a bundle: its folder, and hashes of its inference config and weights."""
    bundle = Path(bundle).resolve()
    config = bundle / "configs" / "inference.yaml"
    weights = Path(checkpoint) if checkpoint else None
    return {
        "bundle": str(bundle),
        "config_sha256": sha256_file(config) if config.is_file() else "",
        "weights_sha256": sha256_file(weights) if weights is not None and weights.is_file() else "",
    }


# model fields compared on resume: the bundle's folder is recorded, not compared, so that a moved
# copy of the same bundle still resumes
COMPARED_MODEL_FIELDS = ("predictor", "network", "config_sha256", "weights_sha256")


def mismatch(record: Mapping[str, Any], *, input_sha256: str, model: Mapping[str, Any],
             options: Mapping[str, Any]) -> str:
    """Why an output recorded as ``record`` was not made by this job ("" if it was)."""
    if record.get("input_sha256") != input_sha256:
        return "was made from a different input (its content hash differs)"
    old = record.get("model") or {}
    if any(old.get(k) != model.get(k) for k in COMPARED_MODEL_FIELDS if k in old or k in model):
        return f"was made by another model ({old.get('bundle') or old.get('network') or 'unknown'})"
    if _plain(dict(record.get("options") or {})) != _plain(dict(options)):
        changed = sorted(k for k in set(options) | set(record.get("options") or {})
                         if (record.get("options") or {}).get(k) != _plain(options.get(k)))
        return f"was made with other options ({', '.join(changed)})"
    return ""
