"""Reduced precision with the cheapest convolutions in fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import phantom, randomised
from volgan.inference import Predictor
from volgan.inference.mixed_precision import (
    Float32Island,
    cheapest_convolutions,
    convolution_flops,
    keep_cheapest_in_fp32,
)
from volgan.inference.optimise import cpu_has_fast_bf16
from volgan.networks import RedWganGenerator

WEIGHTS = Path(__file__).parents[2] / "bundles" / "mri_denoise_redwgan" / "models" / "model.pt"


class Pyramid(nn.Module):
    """Full resolution 1 -> 4, a stride-2 4 -> 8, a transposed 8 -> 4 back up, and 4 -> 1."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv3d(1, 4, 3, padding=1)
        self.down = nn.Conv3d(4, 8, 2, stride=2)
        self.up = nn.ConvTranspose3d(8, 4, 2, stride=2)
        self.out = nn.Conv3d(4, 1, 1)

    def forward(self, x):
        return self.out(self.up(self.down(self.a(x))))


def test_convolution_flops_count_each_layer_at_its_own_resolution():
    flops = convolution_flops(Pyramid(), probe_shape=(8, 8, 8))
    assert flops == {
        "a": 2 * 1 * 4 * 27,
        "down": 2 * 4 * 8 * 8 / 8,  # one output voxel per 8 input voxels
        "up": 2 * 8 * 4 * 8 / 8,  # counted per input voxel of the transposed convolution
        "out": 2 * 4 * 1,
    }


def test_cheapest_convolutions_stay_within_the_share():
    flops = {"wide": 90.0, "narrow": 4.0, "tiny": 1.0, "mid": 5.0}
    assert cheapest_convolutions(flops, 0.05) == ["tiny", "narrow"]
    assert cheapest_convolutions(flops, 0.10) == ["tiny", "narrow", "mid"]
    assert cheapest_convolutions(flops, 0.0) == []


def test_fp32_islands_run_in_fp32_under_autocast_and_leave_the_network_unchanged():
    net = randomised(Pyramid())
    mixed, names = keep_cheapest_in_fp32(net, 0.4)  # FLOPs per voxel: out 8, down 64, up 64, a 216
    assert names == ["out", "down", "up"] and isinstance(mixed.out, Float32Island) and isinstance(net.out, nn.Conv3d)
    dtypes = {}
    for name in ("a", "down", "up", "out"):
        mixed.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: dtypes.__setitem__(name, o.dtype))
    x = torch.rand(1, 1, 8, 8, 8)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = mixed(x)
    assert dtypes == {"a": torch.bfloat16, "down": torch.float32, "up": torch.float32, "out": torch.float32}
    assert y.dtype == torch.float32
    assert keep_cheapest_in_fp32(net, 0.2)[1] == ["out"]
    assert keep_cheapest_in_fp32(net, 0.0) == (net, [])


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no native bf16 (emulated bf16 takes minutes here)")
def test_redwgan_fast_mode_is_closer_to_fp32_with_its_narrow_layers_in_fp32():
    """The shipped denoiser in bf16: a 5 % share keeps its four narrowest layers in fp32 (the bundle
    uses 0.03: three of them), which brings the result much closer to fp32 (same windows, so only
    precision differs)."""
    arr = phantom((40, 36, 32)) + np.random.default_rng(0).normal(0, 5, (40, 36, 32)).clip(0).astype(np.float32)

    def run(precision, share):
        pred = Predictor(RedWganGenerator("small"), checkpoint=WEIGHTS, device="cpu", fast=True,
                         precision=precision, backend="torch", fp32_share=share)
        return pred, pred.predict_array(arr)

    _, ref = run("fp32", 0.0)
    mixed, out_mixed = run("bf16", 0.05)
    plain, out_plain = run("bf16", 0.0)
    assert sorted(mixed.fp32_layers) == ["dec1", "dec2", "enc1.0", "enc2.0"] and plain.fp32_layers == []

    def psnr(out):
        return 10 * np.log10((ref.max() - ref.min()) ** 2 / np.mean((out - ref) ** 2))

    assert psnr(out_mixed) > psnr(out_plain) + 6, (psnr(out_mixed), psnr(out_plain))


class NeedsLargeInputs(nn.Module):
    """Four stride-2 convolutions without padding: a 16^3 probe shrinks to nothing."""

    def __init__(self):
        super().__init__()
        self.down = nn.Sequential(*[nn.Conv3d(1, 1, 3, stride=2) for _ in range(4)])

    def forward(self, x):
        return nn.functional.interpolate(self.down(x), size=x.shape[2:])


def test_a_network_the_flop_probe_cannot_run_keeps_every_layer_in_reduced_precision(caplog):
    with pytest.raises(RuntimeError):
        convolution_flops(NeedsLargeInputs())
    pred = Predictor(NeedsLargeInputs(), device="cpu", precision="bf16", backend="torch", fp32_share=0.5)
    assert pred.fp32_layers == [] and "fp32_share ignored" in caplog.text


@pytest.mark.parametrize("device, share", [("cpu", 0.0), ("cuda", 0.03)])
def test_redwgan_bundle_keeps_fp32_layers_only_where_layers_are_not_fused(device, share):
    """On the CPU fast mode's fused layers round once each (45.9 dB all in bf16,
    benchmarks/README.md), under CUDA autocast the three cheapest layers stay in fp32."""
    from volgan.bundle import bundle_config

    parser = bundle_config(WEIGHTS.parents[1], device=f"$torch.device({device!r})")
    assert parser.get_parsed_content("fp32_share") == share
    if device == "cpu" and cpu_has_fast_bf16():
        fast = Predictor(RedWganGenerator("small"), device="cpu", fast=True, fp32_share=share)
        assert fast.fused and fast.fp32_layers == []
