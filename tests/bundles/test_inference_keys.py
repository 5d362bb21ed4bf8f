"""Every option a bundle's inference.yaml documents reaches its predictor and changes it.

Each bundle's options are its top-level scalar and list keys (not paths, the device or objects).
The tests below name, for each, an override and what it changes; a key without an entry fails,
so an option added to a config without wiring and a test here is caught.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from monai.bundle import ConfigParser

from volgan.inference import Predictor

BUNDLES = Path(__file__).parents[2] / "bundles"
# keys that are not predictor options: paths, the device, objects and the run list
NOT_OPTIONS = {"imports", "bundle_root", "dataset_dir", "output_dir", "ckpt_path", "device", "network", "run"}


def _options(bundle: str) -> set[str]:
    config = yaml.safe_load((BUNDLES / bundle / "configs" / "inference.yaml").read_text())
    return {k for k, v in config.items() if k not in NOT_OPTIONS and not isinstance(v, dict)}


def _predictor(bundle: str, overrides: dict):
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / bundle / "configs" / "inference.yaml"))
    parser.update({"bundle_root": str(BUNDLES / bundle), "device": "$torch.device('cpu')", **overrides})
    return parser.get_parsed_content("predictor", instantiate=True)


def _inner(predictor) -> Predictor:
    """The :class:`Predictor` inside the bundle's wrappers (target grid, training spacing, flips)."""
    while not isinstance(predictor, Predictor):
        predictor = predictor.predictor
    return predictor


def _weights_sum(predictor) -> float:
    """A fingerprint of the weights the bundle's network was loaded with."""
    return float(sum(t.sum() for t in _inner(predictor)._reference.state_dict().values()))


# key -> (overrides, what it reads from the bundle's predictor); both overridden values differ from the defaults
COMMON = {
    "fast": ({"fast": True}, lambda p: _inner(p).fast),
    "precision": ({"precision": "bf16"}, lambda p: _inner(p).precision),
    "channels_last": ({"channels_last": True}, lambda p: _inner(p).channels_last),
    "backend": ({"backend": "torch"}, lambda p: _inner(p).backend),
    "roi_size": ({"roi_size": [32, 32, 32]}, lambda p: _inner(p).roi_size),
    "sw_batch_size": ({"sw_batch_size": 3}, lambda p: _inner(p).sw_batch_size),
    "overlap": ({"overlap": 0.5}, lambda p: _inner(p).overlap),
}
PER_BUNDLE = {
    "pet_lowdose_cgan": {
        "max_window": ({"max_window": [96, 96, 96]}, lambda p: _inner(p).max_window),
        "suv_max": ({"suv_max": 5.0}, lambda p: _inner(p).normaliser.suv_max),
        "units_per_suv": ({"units_per_suv": 1000.0}, lambda p: _inner(p).normaliser.units_per_suv),
        "output_suv": ({"output_suv": True}, lambda p: _inner(p).normaliser.output_suv),
        "training_spacing": ({"training_spacing": [2.0, 2.0]}, lambda p: p.spacing_range),
        "resample_to_training_spacing": ({"resample_to_training_spacing": False}, lambda p: p.enabled),
        # two chained U-Nets (an untrained chain: models/model_progressive.pt is a training's result)
        "stages": ({"stages": 2, "ckpt_path": None}, lambda p: type(_inner(p)._reference).__name__),
    },
    "mri_denoise_redwgan": {
        "weights": ({"weights": "gan"}, _weights_sum),
        "flips": ({"flips": 8}, lambda p: len(p.predictor.axes)),
        "edge_margin": ({"edge_margin": 0}, lambda p: _inner(p).edge_margin),
        "training_spacing": ({"training_spacing": [1.0, 1.0]}, lambda p: p.spacing_range),
        "resample_to_training_spacing": ({"resample_to_training_spacing": False}, lambda p: p.enabled),
        # the cheapest layers in fp32: only with reduced precision in PyTorch
        "fp32_share": ({"fp32_share": 0.1, "fast": True, "precision": "bf16", "backend": "torch"},
                       lambda p: (_inner(p).fp32_layers != [], _inner(p).precision)),
    },
    "mri_sr_mdcsrn": {
        "mode": ({"mode": "kspace"}, lambda p: p.spacing),
        "weights": ({"weights": "gan"}, _weights_sum),
        "target_spacing": ({"target_spacing": 2.0}, lambda p: p.spacing),
        "interpolation": ({"interpolation": "linear"}, lambda p: p.interpolation),
        "slice_axis": ({"slice_axis": None}, lambda p: p.slice_axis),
        "edge_margin": ({"edge_margin": 0}, lambda p: _inner(p).edge_margin),
    },
}
# the baseline each override is compared with (fp32_share: the same mode with no fp32 layers)
BASELINE = {"fp32_share": {"fp32_share": 0.0, "fast": True, "precision": "bf16", "backend": "torch"}}


@pytest.mark.parametrize("bundle", sorted(PER_BUNDLE))
def test_every_documented_key_reaches_and_changes_the_predictor(bundle):
    table = {**COMMON, **PER_BUNDLE[bundle]}
    assert _options(bundle) == set(table), f"{bundle}: options without a wiring test, or tests of absent options"
    default = _predictor(bundle, {})
    for key, (overrides, read) in table.items():
        baseline = _predictor(bundle, BASELINE[key]) if key in BASELINE else default
        changed = _predictor(bundle, overrides)
        assert read(changed) != read(baseline), f"{bundle}: {key}={overrides[key]!r} did not change the predictor"


@pytest.mark.parametrize("bundle", sorted(PER_BUNDLE))
def test_a_backend_outside_auto_native_torch_is_refused(bundle):
    with pytest.raises(RuntimeError) as error:
        _predictor(bundle, {"backend": "onnxruntime"})
    assert isinstance(error.value.__cause__, ValueError)
    assert "backend must be one of ('auto', 'native', 'torch'), got 'onnxruntime'" in str(error.value.__cause__)
