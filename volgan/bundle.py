"""A volgan bundle's inference config, predictor and model identity, for the CLI and the MONAI
Label app alike."""

from __future__ import annotations

import json
from pathlib import Path


def bundle_config(bundle: str | Path, **overrides):
    """A bundle's ``configs/inference.yaml`` as a MONAI ConfigParser, with config overrides."""
    from monai.bundle import ConfigParser

    bundle = Path(bundle)
    config = bundle / "configs" / "inference.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{bundle}: not a volgan bundle (no configs/inference.yaml)")
    parser = ConfigParser()
    parser.read_config(str(config))
    parser["bundle_root"] = str(bundle)
    for key, value in overrides.items():
        if value is not None:
            parser[key] = value
    return parser


def bundle_predictor(bundle: str | Path, **overrides):
    """The ``predictor`` defined by a bundle's ``configs/inference.yaml``, with config overrides."""
    return bundle_config(bundle, **overrides).get_parsed_content("predictor")


def bundle_model_identity(bundle: str | Path) -> dict:
    """What identifies a bundle's model in the provenance of its outputs: its folder and the hashes
    of its inference config and of the weights its ``ckpt_path`` names."""
    from volgan.inference.provenance import bundle_model

    parser = bundle_config(bundle)
    checkpoint = parser.get_parsed_content("ckpt_path") if "ckpt_path" in parser else None
    return bundle_model(bundle, checkpoint)


def bundle_modality(bundle: str | Path) -> str | None:
    """The modality of a bundle's input image from its ``configs/metadata.json`` (None if not stated)."""
    try:
        meta = json.loads((Path(bundle) / "configs" / "metadata.json").read_text())
        return meta["network_data_format"]["inputs"]["image"]["modality"] or None
    except (OSError, ValueError, KeyError, TypeError):
        return None
