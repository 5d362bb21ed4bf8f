"""BatchNorm + ELU as one C pass (AffineELU) and the graph rewrite that puts it in networks."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import phantom, randomised
from volgan.inference import Predictor
from volgan.inference.cpu.norm_elu import AffineELU, fuse_norm_elu
from volgan.networks import MdcsrnGenerator, RedWganGenerator

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="needs a C compiler")


def _norm(channels: int, seed: int = 0) -> nn.BatchNorm3d:
    torch.manual_seed(seed)
    norm = nn.BatchNorm3d(channels).eval()
    with torch.no_grad():
        norm.running_mean.normal_()
        norm.running_var.uniform_(0.3, 3.0)
        norm.weight.normal_()
        norm.bias.normal_()
    return norm


@pytest.mark.parametrize("channels, shape, channels_last", [
    (40, (1, 40, 7, 9, 5), True),  # a chunk count that does not divide the volume
    (3, (2, 3, 4, 5, 6), False),  # a batch, few channels, NCDHW input
    (1, (1, 1, 2, 3, 1), True),
])
def test_affine_elu_matches_batchnorm_then_elu_in_fp32(channels, shape, channels_last):
    norm = _norm(channels)
    x = torch.randn(shape) * 4
    x = torch.cat([x.flatten()[:-3], torch.tensor([-1e4, 0.0, 90.0])]).view(shape)  # far negative, zero, large
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    module = AffineELU(norm, alpha=0.7)
    with torch.inference_mode():
        expected = nn.functional.elu(norm(x), alpha=0.7)
        y = module(x)
    assert y.shape == x.shape and y.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(y, expected, rtol=2e-6, atol=2e-6)


def test_bf16_is_the_fp32_result_rounded_once_to_nearest_even():
    norm = _norm(24, seed=1)
    x = (torch.randn(1, 24, 6, 10, 7) * 3).bfloat16().contiguous(memory_format=torch.channels_last_3d)
    module = AffineELU(norm)
    with torch.inference_mode():
        y = module(x)
        from_fp32 = module(x.float()).bfloat16()
        nan = module(torch.full((1, 24, 1, 1, 2), float("nan"), dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, from_fp32)
    assert bool(nan.isnan().all())


def test_without_the_kernels_the_same_formula_runs_in_pytorch(monkeypatch):
    norm = _norm(16, seed=2)
    x = torch.randn(2, 16, 5, 6, 7)
    module = AffineELU(norm, alpha=1.3)
    with torch.inference_mode():
        native = module(x)
        monkeypatch.setattr("volgan.inference.cpu.norm_elu.load_library", lambda: None)
        fallback = module(x)
    torch.testing.assert_close(fallback, native, rtol=2e-6, atol=2e-6)
    torch.testing.assert_close(fallback, nn.functional.elu(norm(x), alpha=1.3), rtol=1e-6, atol=1e-6)


def test_mdcsrn_runs_every_pre_activation_unit_as_one_pass():
    net = randomised(MdcsrnGenerator("small"))
    fused = fuse_norm_elu(net)
    passes = [m for m in fused.modules() if isinstance(m, AffineELU)]
    assert len(passes) == net.n_blocks * net.n_units
    assert not any(isinstance(m, (nn.ELU, nn.BatchNorm3d)) for m in fused.modules())
    assert any(isinstance(m, nn.BatchNorm3d) for m in net.modules())  # the input network is not changed
    x = torch.rand(1, 1, 9, 10, 11)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), net(x), rtol=1e-5, atol=1e-5)


class _SharedNorm(nn.Module):
    """A BatchNorm whose output feeds an ELU and a convolution: not fusable."""

    def __init__(self):
        super().__init__()
        self.norm, self.act, self.conv = nn.BatchNorm3d(2), nn.ELU(), nn.Conv3d(2, 2, 1)

    def forward(self, x):
        y = self.norm(x)
        return self.act(y) + self.conv(y)


def test_only_a_batchnorm_used_by_nothing_but_an_elu_is_fused():
    shared = randomised(_SharedNorm())
    assert fuse_norm_elu(shared) is shared
    red = RedWganGenerator("small").eval()  # no ELU at all
    assert fuse_norm_elu(red) is red


def test_predictor_uses_it_in_pytorch_on_the_cpu(monkeypatch):
    net = randomised(MdcsrnGenerator("small"))
    arr = phantom((20, 18, 17))
    pred = Predictor(net, roi_size=(16, 16, 16), device="cpu", backend="torch")
    assert pred.norm_elu and not any(isinstance(m, nn.ELU) for m in pred.network.modules())
    monkeypatch.setattr("volgan.inference.cpu.load_library", lambda: None)
    plain = Predictor(net, roi_size=(16, 16, 16), device="cpu", backend="torch")
    assert not plain.norm_elu and any(isinstance(m, nn.ELU) for m in plain.network.modules())
    expected = plain.predict_array(arr)
    np.testing.assert_allclose(pred.predict_array(arr), expected, atol=1e-5 * float(expected.max() - expected.min()))
