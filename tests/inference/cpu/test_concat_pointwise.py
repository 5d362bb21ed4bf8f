"""A 1x1x1 convolution of a channel concatenation as a sum of per-part convolutions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from volgan.inference.cpu.concat_pointwise import ConcatPointwiseConv3d, split_concat_pointwise
from volgan.inference.cpu.fused_pointwise import fused_pointwise_available

pytestmark = pytest.mark.skipif(not fused_pointwise_available(), reason="needs oneDNN's fused CPU convolutions")


class Levels(nn.Module):
    """mDCSRN's shape in miniature: levels of different widths concatenated into a 1x1x1
    reconstruction, plus the input (``cat_again``: the concatenation also feeds another layer)."""

    def __init__(self, kernel: int = 1, cat_again: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Conv3d(1, 3, 3, padding=1), nn.Conv3d(3, 5, 3, padding=1)
        self.rec = nn.Conv3d(9, 2, kernel, padding=kernel // 2)
        self.cat_again = cat_again

    def forward(self, x):
        a = self.a(x)
        b = self.b(a)
        cat = torch.cat([x, a, b], dim=1)
        y = self.rec(cat)
        return y + cat[:, :2] if self.cat_again else y + x


def run(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return net(x).float()


def test_the_concatenation_is_replaced_by_a_sum_of_part_convolutions():
    net = Levels().eval()
    split = split_concat_pointwise(net, torch.float32)
    assert split is not net
    assert [type(m) for m in split.modules() if isinstance(m, ConcatPointwiseConv3d)] == [ConcatPointwiseConv3d]
    assert not [n for n in split.graph.nodes if n.target is torch.cat]
    assert isinstance(net.rec, nn.Conv3d)  # the input network is untouched
    x = torch.randn(2, 1, 7, 6, 5)
    ref = run(net, x)
    torch.testing.assert_close(run(split, x), ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


@pytest.mark.skipif(not fused_pointwise_available(torch.bfloat16), reason="oneDNN runs no bf16 on this CPU")
def test_bf16_parts_are_summed_in_float32():
    net = Levels().eval()
    x = torch.randn(1, 1, 8, 9, 10)
    with torch.inference_mode():
        ref = net(x)
        cat = torch.cat([x, net.a(x), net.b(net.a(x))], 1)
        module = ConcatPointwiseConv3d(net.rec, torch.bfloat16)
        out = module(x, net.a(x), net.b(net.a(x)))
        exact = net.rec(cat)
    assert out.dtype == torch.float32 and ref.dtype == torch.float32
    # each part is rounded once to bf16 (relative 2^-8), the sum is not
    torch.testing.assert_close(out, exact, rtol=0, atol=0.01 * float(exact.abs().max()))


@pytest.mark.parametrize("variant", [dict(kernel=3), dict(cat_again=True)])
def test_other_convolutions_and_shared_concatenations_are_left_alone(variant):
    net = Levels(**variant).eval()
    assert split_concat_pointwise(net, torch.float32) is net


def test_parts_that_do_not_add_up_to_the_convolution_s_channels_are_refused():
    module = ConcatPointwiseConv3d(nn.Conv3d(9, 2, 1), torch.float32)
    with pytest.raises(ValueError, match=r"\(1, 3\) channels, 4 in all; the convolution takes 9"):
        module(torch.rand(1, 1, 4, 4, 4), torch.rand(1, 3, 4, 4, 4))
    with pytest.raises(ValueError, match="1x1x1"):
        ConcatPointwiseConv3d(nn.Conv3d(9, 2, 3), torch.float32)


def test_layers_kept_apart_are_not_split():
    net = Levels().eval()
    assert split_concat_pointwise(net, torch.bfloat16, keep=["rec"]) is net
