"""Convolutions fused with their activation or skip addition (oneDNN post-ops), and BatchNorm
folded across a skip addition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import phantom, randomised
from volgan.inference import Predictor
from volgan.inference.cpu.fused_pointwise import (
    PointwiseConv3d,
    fold_batchnorm_after_add,
    fuse_pointwise,
    fused_pointwise_available,
)
from volgan.inference.optimise import cpu_has_fast_bf16, fold_batchnorm
from volgan.networks import RedWganGenerator

pytestmark = pytest.mark.skipif(not fused_pointwise_available(), reason="no oneDNN fused convolutions in this build")


def tiny_redwgan(negative_scale: bool = False) -> nn.Module:
    """RED-WGAN at widths 4-6-8-10 with random weights and BatchNorm statistics, the encoder's
    BatchNorms folded as in the predictor (so the decoder's ``BN(conv(y) + e)`` remain)."""
    net = randomised(RedWganGenerator(channels=(4, 6, 8, 10)))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
        if negative_scale:
            net.post3[0].weight[1] = -0.7
    return fold_batchnorm(net)


def batchnorms(net: nn.Module) -> list[str]:
    return [name for name, m in net.named_modules() if isinstance(m, nn.BatchNorm3d)]


def run(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return net(x).float().contiguous()


def test_batchnorm_after_a_skip_addition_folds_into_the_convolutions_around_it():
    net = tiny_redwgan()
    assert batchnorms(net) == ["post4.0", "post3.0", "post2.0"]
    folded = fold_batchnorm_after_add(net)
    assert batchnorms(folded) == [] and batchnorms(net) == ["post4.0", "post3.0", "post2.0"]
    x = torch.rand(2, 1, 10, 9, 8)
    ref = run(net, x)
    torch.testing.assert_close(run(folded, x), ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_a_negative_batchnorm_scale_is_not_folded_through_the_leaky_relu():
    """LeakyReLU(s * z) = s * LeakyReLU(z) only for s > 0: that BatchNorm must stay."""
    net = tiny_redwgan(negative_scale=True)
    folded = fold_batchnorm_after_add(net)
    assert "post3.0" in batchnorms(folded) and "post4.0" not in batchnorms(folded)
    x = torch.rand(1, 1, 9, 8, 8)
    ref = run(net, x)
    torch.testing.assert_close(run(folded, x), ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_fused_network_in_fp32_computes_the_same_function_without_separate_activations():
    net = tiny_redwgan()
    fused = fuse_pointwise(fold_batchnorm_after_add(net), torch.float32)
    kinds = {type(m) for m in fused.modules()}
    assert nn.ReLU not in kinds and nn.Conv3d not in kinds
    # oneDNN has no LeakyReLU after a binary addition: only the decoder's three remain
    assert sorted(n for n, m in fused.named_modules() if isinstance(m, nn.LeakyReLU)) == ["post2.1", "post3.1", "post4.1"]
    adds = [m for m in fused.modules() if isinstance(m, PointwiseConv3d) and m.add]
    assert len(adds) == 4  # the three decoder skips and the residual output (with its ReLU)
    x = torch.rand(2, 1, 10, 9, 8).contiguous(memory_format=torch.channels_last_3d)
    ref = run(net, x)
    torch.testing.assert_close(run(fused, x), ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no native bf16")
def test_layers_named_fp32_run_in_fp32_the_rest_in_bf16():
    net = tiny_redwgan()
    fused = fuse_pointwise(fold_batchnorm_after_add(net), torch.bfloat16, fp32_layers=["dec1", "enc1.0"])
    dtypes = {name: m.dtype for name, m in fused.named_modules() if isinstance(m, PointwiseConv3d)}
    assert dtypes.pop("dec1") == dtypes.pop("enc1.0") == torch.float32
    assert set(dtypes.values()) == {torch.bfloat16} and len(dtypes) == 6
    x = torch.rand(1, 1, 12, 10, 8)
    ref = run(net, x)
    out = run(fused, x)
    err = float((out - ref).abs().max())
    assert 0 < err < 0.05 * float(ref.abs().max())


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no native bf16")
def test_the_residual_addition_of_the_input_stays_in_fp32():
    """``relu(dec1(y) + x)`` with ``x`` the float32 input: under autocast the sum is float32; the
    fused form keeps it apart rather than round the network's output to bf16."""
    net = tiny_redwgan()
    fused = fuse_pointwise(fold_batchnorm_after_add(net), torch.bfloat16)
    assert isinstance(fused.dec1, nn.Conv3d) and [m.add for m in (fused.dec2, fused.dec3, fused.dec4)] == [True] * 3
    x = torch.rand(1, 1, 8, 8, 8)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert fused(x).dtype == net(x).dtype == torch.float32


class SharedAndFunctional(nn.Module):
    """One convolution called twice (shared weights), one followed by a functional activation,
    one by nothing, one by a ReLU module: only the last is fused, unless named in fp32."""

    def __init__(self):
        super().__init__()
        self.shared = nn.Conv3d(2, 2, 3, padding=1)
        self.plain = nn.Conv3d(2, 2, 1)
        self.last = nn.Conv3d(2, 1, 1)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.last(self.plain(torch.relu(self.shared(self.shared(x))))))


def test_only_convolutions_with_something_to_fuse_or_named_fp32_are_replaced():
    net = randomised(SharedAndFunctional())
    fused = fuse_pointwise(net, torch.bfloat16)
    assert isinstance(fused.shared, nn.Conv3d) and isinstance(fused.plain, nn.Conv3d)
    assert isinstance(fused.last, PointwiseConv3d) and fused.last.unary == "relu"
    assert isinstance(fuse_pointwise(net, torch.bfloat16, fp32_layers=["plain"]).plain, PointwiseConv3d)
    fused = fuse_pointwise(net, torch.float32)
    x = torch.rand(1, 2, 6, 6, 6)
    torch.testing.assert_close(run(fused, x), run(net, x), rtol=1e-5, atol=1e-6)


def test_nothing_to_fuse_returns_the_network_itself():
    net = nn.Sequential(nn.ConvTranspose3d(1, 1, 2, stride=2), nn.ReLU())
    assert fuse_pointwise(net, torch.float32) is net
    assert fold_batchnorm_after_add(net) is net


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no native bf16")
def test_predictor_fast_mode_fuses_on_the_cpu_and_matches_the_unfused_path(monkeypatch):
    """The predictor's bf16 fast mode on the CPU runs the fused network; with fusion unavailable
    it runs the autocast path; both stay close to fp32 on the same windows."""
    import volgan.inference.cpu as predictor_module

    net = tiny_redwgan()
    arr = phantom((30, 28, 26))
    kwargs = dict(device="cpu", fast=True, backend="torch", max_window=(24, 24, 24), margin=8)
    ref = Predictor(net, precision="fp32", channels_last=False, **kwargs).predict_array(arr)
    fused = Predictor(net, precision="bf16", fp32_share=0.03, **kwargs)
    assert fused.fused and fused.fp32_layers and any(isinstance(m, PointwiseConv3d) for m in fused.network.modules())
    assert all(fused.network.get_submodule(name).dtype == torch.float32 for name in fused.fp32_layers)
    monkeypatch.setattr(predictor_module, "fused_pointwise_available", lambda dtype: False)
    plain = Predictor(net, precision="bf16", fp32_share=0.03, **kwargs)
    assert not plain.fused
    data_range = float(ref.max() - ref.min())
    for out in (fused.predict_array(arr), plain.predict_array(arr)):
        psnr = 10 * np.log10(data_range**2 / np.mean((out - ref) ** 2))
        assert psnr > 35.0, psnr


def test_bf16_fast_mode_runs_on_any_cpu_fused_only_where_onednn_has_bf16(caplog):
    """An explicit bf16 fast mode fuses where oneDNN runs bf16 and otherwise falls back to
    PyTorch's autocast path (oneDNN's fused bf16 convolution raises on an AVX2-only CPU), with a
    warning where bf16 is emulated; either way it stays close to fp32."""
    net = tiny_redwgan()
    arr = phantom((20, 18, 16))
    kwargs = dict(device="cpu", fast=True, backend="torch", max_window=(16, 16, 16), margin=8)
    ref = Predictor(net, precision="fp32", **kwargs).predict_array(arr)
    with caplog.at_level("WARNING", logger="volgan.inference.predictor"):
        pred = Predictor(net, precision="bf16", **kwargs)
    assert pred.fused == fused_pointwise_available(torch.bfloat16)
    assert ("emulated" in caplog.text) == (not cpu_has_fast_bf16())
    out = pred.predict_array(arr)
    data_range = float(ref.max() - ref.min())
    assert 10 * np.log10(data_range**2 / np.mean((out - ref) ** 2)) > 35.0


@pytest.mark.parametrize("batch", [1, 3])
def test_a_one_channel_input_gives_a_channels_last_output(batch):
    """A one-channel tensor is contiguous in both layouts; the fused convolution must still return
    channels-last (the next layer would otherwise copy it into that layout)."""
    conv = nn.Conv3d(1, 6, 4, stride=2, padding=1).eval()
    layer = PointwiseConv3d(conv, torch.float32, "leaky_relu", 0.2)
    x = torch.randn(batch, 1, 9, 12, 10)  # plain strides
    with torch.inference_mode():
        y = layer(x)
        ref = torch.nn.functional.leaky_relu(conv(x), 0.2)
    assert y.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_accumulate_adds_the_convolution_into_a_tensor_in_place():
    torch.manual_seed(0)
    conv = nn.Conv3d(4, 3, 2, padding=1).eval()
    layer = PointwiseConv3d(conv, torch.float32)
    x = torch.randn(2, 4, 5, 6, 7).contiguous(memory_format=torch.channels_last_3d)
    into = torch.randn(2, 3, 6, 7, 8).contiguous(memory_format=torch.channels_last_3d)
    with torch.inference_mode():
        ref = into + conv(x)
        address = into.data_ptr()
        out = layer.accumulate(x, into)
    assert out.data_ptr() == into.data_ptr() == address
    torch.testing.assert_close(into, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    with pytest.raises(ValueError, match="channels-last"):
        layer.accumulate(x, into.contiguous())
    with pytest.raises(ValueError, match="no activation"):
        PointwiseConv3d(conv, torch.float32, "relu").accumulate(x, into)
