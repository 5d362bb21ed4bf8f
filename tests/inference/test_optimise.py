from __future__ import annotations

import torch
from torch import nn

from tests.conftest import randomised
from volgan.inference.optimise import fold_batchnorm
from volgan.networks import PetUNetGenerator


def count(net: nn.Module, kind) -> int:
    return sum(isinstance(m, kind) for m in net.modules())


def test_batchnorm_after_plain_and_transposed_convolutions_is_folded():
    """The PET U-Net (BatchNorm after strided and transposed convolutions, shape-dependent padding
    kept out of the trace) folds completely; the input network is left unchanged."""
    net = randomised(PetUNetGenerator(channels=(4, 8, 8), residual=True))
    folded = fold_batchnorm(net)
    assert count(folded, nn.BatchNorm3d) == 0 and count(net, nn.BatchNorm3d) == 4
    x = torch.rand(2, 1, 13, 18, 9)
    with torch.no_grad():
        ref = net(x)
        torch.testing.assert_close(folded(x), ref, rtol=0, atol=1e-5 * float(ref.abs().max()))


class SharedConvolution(nn.Module):
    """A convolution whose output feeds a BatchNorm and something else: folding would change the other use."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv3d(2, 3, 3, padding=1), nn.BatchNorm3d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_batchnorm_is_not_folded_into_a_convolution_used_elsewhere():
    net = randomised(SharedConvolution())
    folded = fold_batchnorm(net)
    assert count(folded, nn.BatchNorm3d) == 1
    x = torch.rand(1, 2, 5, 6, 7)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x))


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv3d(1, 1, 1), nn.BatchNorm3d(1)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            return self.bn(self.conv(x))
        return x


def test_untraceable_network_is_returned_as_is():
    net = Untraceable().eval()
    assert fold_batchnorm(net) is net
