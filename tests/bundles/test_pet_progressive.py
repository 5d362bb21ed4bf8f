"""The PET bundle's progressive (two-stage) generator: configs/train_progressive.yaml through the
real bundle CLI, inference.yaml's ``stages`` and the predictor on a chain of U-Nets."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.inferers import SlidingWindowInferer

from tests.bundles.bundle_checks import ROOT, bundle_cli, tiny_training_args
from tests.bundles.test_pet_lowdose_cgan import pair_dataset, truth_dataset  # noqa: F401 (fixtures: the phantom layout)
from tests.conftest import phantom
from volgan.data.normalise import LinearScale
from volgan.inference import Predictor
from volgan.networks import ConcatenatedGenerator, PetUNetGenerator

BUNDLE = ROOT / "bundles" / "pet_lowdose_cgan"
CONFIGS = BUNDLE / "configs"
SHIPPED = BUNDLE / "models" / "model.pt"


def training_configs() -> list[str]:
    """The phantom training (train.yaml), then the overlay."""
    return ["train.yaml", "train_progressive.yaml"]


def shipped_stage() -> PetUNetGenerator:
    net = PetUNetGenerator("small", residual=True)
    net.load_state_dict(torch.load(SHIPPED, weights_only=True))
    return net.eval()


def scan(seed: int, shape=(40, 40, 36)) -> np.ndarray:
    """A noisy PET-like volume in SUV."""
    suv = phantom(shape, seed=seed) / 10.0
    return (np.random.default_rng(seed).poisson(suv * 4) / 4.0).astype(np.float32)


def test_the_untrained_chain_computes_its_first_stage_and_only_the_second_stage_is_optimised():
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / c) for c in training_configs()])
    parser.update({"bundle_root": str(BUNDLE), "device": "$torch.device('cpu')"})
    generator = parser.get_parsed_content("generator")
    optimiser = parser.get_parsed_content("g_optimizer")
    assert isinstance(generator, ConcatenatedGenerator) and len(generator.stages) == 2
    first = shipped_stage()
    for key, value in first.state_dict().items():
        assert torch.equal(generator.stages[0].state_dict()[key], value), key
    optimised = {id(p) for group in optimiser.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in generator.stages[1].parameters()}
    assert not any(p.requires_grad for p in generator.stages[0].parameters())
    x = torch.from_numpy(scan(5, (36, 40, 32)) / 10.0)[None, None]
    with torch.no_grad():
        expected = first(x)
        generator.train()  # training mode: stage 1 stays in eval mode, stage 2's zero head adds nothing
        assert not generator.stages[0].training and generator.stages[1].training
        torch.testing.assert_close(generator(x), expected, rtol=0, atol=0)
        torch.testing.assert_close(generator.eval()(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_the_predictor_runs_a_chain_in_both_modes_as_the_plain_network(backend):
    """Natively (the chain of native U-Nets) or in PyTorch: default mode equal to MONAI's sliding
    window, fast mode (one window, the CPU's fast precision) equal to the whole-volume network
    within that precision."""
    torch.manual_seed(0)
    net = ConcatenatedGenerator(2, "small", residual=True)
    for stage in net.stages:
        torch.nn.init.normal_(stage.head.weight, std=0.02)
    net.eval()
    arr = scan(6, (40, 36, 32))
    params = LinearScale(0.0, 10.0)
    inferer = SlidingWindowInferer(roi_size=(32, 32, 32), sw_batch_size=2, overlap=0.25, mode="gaussian")
    with torch.no_grad():
        ref = inferer(torch.from_numpy(arr / 10.0)[None, None], net).numpy()[0, 0] * 10.0
        whole = net(torch.from_numpy(arr / 10.0)[None, None]).numpy()[0, 0] * 10.0
    scale = float(ref.max() - ref.min())
    default = Predictor(net, roi_size=(32, 32, 32), overlap=0.25, device="cpu", backend=backend)
    assert default.backend in ((backend,) if backend == "torch" else ("native", "torch"))
    np.testing.assert_allclose(default.predict_array(arr, params=params), ref, atol=1e-4 * scale)
    fast = Predictor(net, device="cpu", fast=True, backend=backend)
    assert fast.guard is not None and fast.guard.passed, fast.guard
    out = fast.predict_array(arr, params=params)
    np.testing.assert_allclose(out, whole, atol=(5e-2 if fast.precision != "fp32" else 1e-4) * scale)


@pytest.mark.slow
def test_progressive_training_trains_stage_two_only_resumes_and_runs_with_stages_2(tmp_path, truth_dataset):
    state_dir = tmp_path / "state"
    shipped = sorted(p.name for p in (BUNDLE / "models").iterdir())
    args = [*tiny_training_args(BUNDLE, tmp_path, truth_dataset, training_configs(), "--validate#roi_size", "[32, 32, 32]"),
            "--state_dir", str(state_dir), "--patch_size", "[32, 32, 32]", "--warmup_iterations", "100000000"]
    bundle_cli(*args)
    state = state_dir / "training_state_checkpoint_epoch=2.pt"
    checkpoint = torch.load(state, weights_only=True)
    assert checkpoint["trainer"]["iteration"] == 4
    first = shipped_stage().state_dict()
    trained = checkpoint["generator"]
    for key, value in first.items():  # weights and BatchNorm statistics
        assert torch.equal(trained[f"stages.0.{key}"], value), key
    assert trained["stages.1.head.weight"].abs().max() > 0  # zero-initialised, now trained
    assert (state_dir / "generator_best_val.pt").is_file()
    assert sorted(p.name for p in (BUNDLE / "models").iterdir()) == shipped

    resumed = bundle_cli(*args, "--max_epochs", "3", "--resume_from", str(state))
    assert f"Restored all variables from {state}" in resumed.stdout + resumed.stderr
    again = torch.load(state_dir / "training_state_checkpoint_epoch=3.pt", weights_only=True)["generator"]
    assert all(torch.equal(again[f"stages.0.{k}"], v) for k, v in first.items())
    assert not torch.equal(again["stages.1.head.weight"], trained["stages.1.head.weight"])

    # inference: the trained chain with --stages 2, and the untrained chain, which is stage 1 alone
    untrained = ConcatenatedGenerator(2, "small", residual=True)
    untrained.stages[0].load_state_dict(first)
    torch.save(untrained.state_dict(), tmp_path / "untrained.pt")
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(scan(7, (48, 44, 40)), np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / "in" / "low.nii.gz")
    outputs = {}
    for name, extra in (("single", []), ("untrained", ["--stages", "2", "--ckpt_path", str(tmp_path / "untrained.pt")]),
                        ("trained", ["--stages", "2", "--ckpt_path", str(state_dir / "generator_best_val.pt")])):
        bundle_cli("run", "--config_file", str(CONFIGS / "inference.yaml"), "--bundle_root", str(BUNDLE),
                   "--dataset_dir", str(tmp_path / "in"), "--output_dir", str(tmp_path / name), *extra)
        outputs[name] = nib.load(tmp_path / name / "low.nii.gz").get_fdata()
        report = json.loads((tmp_path / name / "volgan_report.json").read_text())
        assert json.dumps(report).count("ConcatenatedGenerator" if name != "single" else "PetUNetGenerator") > 0
    scale = float(np.ptp(outputs["single"]))
    np.testing.assert_allclose(outputs["untrained"], outputs["single"], atol=1e-4 * scale)
    assert np.abs(outputs["trained"] - outputs["single"]).max() > 1e-3 * scale
