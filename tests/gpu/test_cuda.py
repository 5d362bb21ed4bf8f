"""The CUDA path: each bundle's predictor in default and fast mode against its CPU result, and a
few AMP training steps of each generator with its critic. Skipped without CUDA.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/gpu``
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from tests.conftest import phantom
from volgan.data.normalise import LinearScale
from volgan.engines import PairedGanTrainer
from volgan.losses import AdversarialLoss
from volgan.networks import (
    MdcsrnCritic,
    MdcsrnGenerator,
    PetPatchDiscriminator,
    PetUNetGenerator,
    RedWganCritic,
    RedWganGenerator,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

BUNDLES = Path(__file__).parents[2] / "bundles"
NAMES = ("mri_denoise_redwgan", "mri_sr_mdcsrn", "pet_lowdose_cgan")


def _bundle_predictor(bundle: str, device: str, fast: bool):
    """The bundle's same-grid predictor (the SR bundle's refiner) with its shipped weights."""
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / bundle / "configs" / "inference.yaml"))
    parser.update({"bundle_root": str(BUNDLES / bundle), "device": f"$torch.device('{device}')", "fast": fast})
    return parser.get_parsed_content("refiner" if bundle == "mri_sr_mdcsrn" else "predictor", instantiate=True)


def _psnr(out: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(float(ref.max() - ref.min()) ** 2 / max(float(np.mean((out - ref) ** 2)), 1e-30)))


@pytest.mark.parametrize("bundle", NAMES)
def test_bundle_inference_on_cuda_matches_the_cpu(bundle):
    """Default mode (fp32, MONAI's grid; TF32 convolutions allowed) within 50 dB of the CPU's
    default result; fast mode (bf16, large windows) within 40 dB of it."""
    arr = phantom((72, 64, 56))
    params = LinearScale(0.0, 100.0)
    cpu = _bundle_predictor(bundle, "cpu", fast=False).predict_array(arr, params=params)
    for fast, bound in ((False, 50.0), (True, 40.0)):
        pred = _bundle_predictor(bundle, "cuda:0", fast=fast)
        assert pred.device.type == "cuda" and pred.fast is fast
        assert pred.guard is None or pred.guard.passed, pred.guard
        out = pred.predict_array(arr, params=params)
        assert out.shape == arr.shape and np.isfinite(out).all()
        assert _psnr(out, cpu) > bound, f"{bundle} fast={fast}: {_psnr(out, cpu):.1f} dB from the CPU result"


GENERATORS = {
    "redwgan": (lambda: RedWganGenerator("small"), lambda: RedWganCritic((8, 16, 16), channels=(8, 8, 8)), False, "wgan"),
    "mdcsrn": (lambda: MdcsrnGenerator("small"), lambda: MdcsrnCritic((16, 16, 16), preset="small"), False, "wgan"),
    "pet": (lambda: PetUNetGenerator("small", residual=True), lambda: PetPatchDiscriminator((8, 8, 8, 8)), True, "bce"),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_amp_training_steps_on_cuda(name):
    """Four iterations of the bundles' trainer with AMP (fp16 autocast, gradient scaling): finite
    losses, and the generator's weights move."""
    make_generator, make_critic, conditional, kind = GENERATORS[name]
    torch.manual_seed(0)
    device = torch.device("cuda:0")
    generator, critic = make_generator().to(device), make_critic().to(device)
    shape = {"redwgan": (8, 16, 16), "mdcsrn": (16, 16, 16), "pet": (32, 32, 32)}[name]
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(4):
        target = torch.rand(2, 1, *shape, generator=g)
        batches.append({"image": target + 0.1 * torch.randn(target.shape, generator=g), "label": target})
    trainer = PairedGanTrainer(
        device=device, max_epochs=1, train_data_loader=batches, generator=generator, critic=critic,
        g_optimizer=torch.optim.Adam(generator.parameters(), 1e-3), d_optimizer=torch.optim.Adam(critic.parameters(), 1e-4),
        content_loss=torch.nn.L1Loss(), adversarial_loss=AdversarialLoss(kind), n_critic=1, conditional=conditional,
        amp=True,
    )
    before = [p.detach().clone() for p in generator.parameters()]
    trainer.run()
    assert trainer.amp and trainer.state.iteration == 4
    losses = trainer.state.output[0] if isinstance(trainer.state.output, list) else trainer.state.output
    values = [float(v) for v in losses.values() if isinstance(v, (int, float, torch.Tensor)) and torch.as_tensor(v).numel() == 1]
    assert values and all(np.isfinite(values))
    assert any(not torch.equal(a, b) for a, b in zip(before, generator.parameters()))
