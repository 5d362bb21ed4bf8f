from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import randomised
from volgan.inference.cpu.depth_major import depth_major_network
from volgan.inference.optimise import fold_batchnorm
from volgan.inference.cpu.winograd import WinogradDepthConv3d, worth_winograd
from volgan.networks import MdcsrnGenerator, PetUNetGenerator, RedWganGenerator


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 6, 7, 9, 12])
@pytest.mark.parametrize("bias", [True, False])
def test_winograd_depth_convolution_equals_conv3d(depth, bias):
    torch.manual_seed(depth)
    conv = nn.Conv3d(8, 16, 3, padding=1, bias=bias)
    x = torch.randn(2, 8, depth, 7, 5)
    with torch.no_grad():
        ref = conv(x)
        out = WinogradDepthConv3d(conv)(x.transpose(1, 2)).transpose(1, 2)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < 1e-5 * ref.abs().max()


def test_winograd_refuses_other_convolutions():
    for conv in (nn.Conv3d(8, 8, 3, stride=2, padding=1), nn.Conv3d(8, 8, 3), nn.Conv3d(8, 8, 5, padding=2),
                 nn.Conv3d(8, 8, 3, padding=1, groups=2), nn.Conv3d(8, 8, 3, padding=1, padding_mode="reflect")):
        assert not worth_winograd(conv)
        with pytest.raises(ValueError, match="3x3x3"):
            WinogradDepthConv3d(conv)


@pytest.mark.parametrize("make", [lambda: RedWganGenerator("small"), lambda: MdcsrnGenerator("small"),
                                  lambda: MdcsrnGenerator("small", global_residual=False)])
def test_rewritten_generators_compute_the_same_function(make):
    """RED-WGAN (folded BatchNorm, residual adds) and mDCSRN (BatchNorm before convolutions, dense
    concatenations, 1x1x1 compressors) give the same output in depth-major Winograd form."""
    net = fold_batchnorm(randomised(make()))
    rewritten = depth_major_network(net)
    assert rewritten is not None
    assert any(isinstance(m, WinogradDepthConv3d) for m in rewritten.modules())
    x = torch.rand(2, 1, 13, 18, 11)
    with torch.no_grad():
        ref, out = net(x), rewritten(x)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < 1e-5 * (ref.max() - ref.min())


class MeanOverChannels(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 8, 3, padding=1)

    def forward(self, x):
        return self.conv(x).mean(dim=1, keepdim=True)


class DepthConcat(nn.Module):
    def forward(self, x):
        return torch.cat([x, x], dim=2)


@pytest.mark.parametrize("net", [
    nn.Sequential(nn.Conv3d(1, 8, 3, stride=2, padding=1)),  # changes the grid
    nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.MaxPool3d(2)),  # unknown module
    nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.BatchNorm3d(8, track_running_stats=False)),  # batch statistics even in eval
    MeanOverChannels(),  # a method whose meaning depends on the layout
    DepthConcat(),  # concatenation along a spatial axis
    PetUNetGenerator(channels=(4, 8)),  # not traceable (shape-dependent padding)
])
def test_networks_the_rewrite_does_not_know_are_left_alone(net):
    assert depth_major_network(net) is None


def test_original_network_is_not_modified():
    net = fold_batchnorm(randomised(RedWganGenerator("small")))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    modules = [(name, type(m)) for name, m in net.named_modules()]
    depth_major_network(net)
    assert [(name, type(m)) for name, m in net.named_modules()] == modules
    after = net.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
