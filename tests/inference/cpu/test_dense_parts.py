"""A dense block's running concatenation as parts: BatchNorm + ELU over parts, gathering them."""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from torch import nn

from tests.conftest import randomised
from volgan.inference.cpu import dense_parts
from volgan.inference.cpu.dense_parts import Part, affine_elu_parts, gather_parts
from volgan.inference.cpu.norm_elu import AffineELU

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="needs a C compiler")
CL = torch.channels_last_3d


def _parts(dtype: torch.dtype, batch: int = 2, depth: int = 6, h: int = 7, w: int = 9) -> list[Part]:
    """A 16-channel part, an 8-channel paired one, a 3-channel one and a 5-channel paired one (plane
    of 63 positions: not a whole number of chunks)."""
    g = torch.Generator().manual_seed(0)

    def tensor(c, d):
        return (torch.randn(batch, c, d, h, w, generator=g) * 3).to(dtype).contiguous(memory_format=CL)

    return [Part(tensor(16, depth)), Part(tensor(16, depth // 2), paired=True), Part(tensor(3, depth)),
            Part(tensor(10, depth // 2), paired=True)]


def _concatenation(parts: list[Part]) -> torch.Tensor:
    """The reference: each part interleaved by hand, then concatenated."""
    dense = []
    for part in parts:
        t = part.tensor
        if part.paired:
            k = part.channels
            out = torch.empty(t.shape[0], k, 2 * t.shape[2], *t.shape[3:], dtype=t.dtype)
            out[:, :, 0::2], out[:, :, 1::2] = t[:, :k], t[:, k:]
            t = out
        dense.append(t)
    return torch.cat(dense, dim=1)


def test_paired_part_is_read_as_its_two_depths():
    parts = _parts(torch.float32)
    assert [p.channels for p in parts] == [16, 8, 3, 5]
    assert torch.equal(parts[1].dense(), _concatenation(parts[1:2]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_affine_elu_over_parts_is_affine_elu_over_their_concatenation(dtype):
    parts = _parts(dtype)
    norm = AffineELU(randomised(nn.BatchNorm3d(32)).eval(), alpha=0.8)
    with torch.inference_mode():
        y = affine_elu_parts(norm, parts)
        expected = norm(_concatenation(parts).contiguous(memory_format=CL))
    assert y.shape == (2, 32, 6, 7, 9) and y.dtype == dtype and y.is_contiguous(memory_format=CL)
    assert torch.equal(y, expected)  # the same arithmetic, value by value


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gathered_parts_are_their_concatenation(dtype):
    parts = _parts(dtype, batch=1, depth=4, h=5, w=17)
    y = gather_parts(parts)
    assert y.is_contiguous(memory_format=CL) and torch.equal(y, _concatenation(parts))


def test_odd_depth_with_plain_parts_and_the_pytorch_fallback(monkeypatch):
    g = torch.Generator().manual_seed(1)
    parts = [Part(torch.randn(1, c, 5, 4, 3, generator=g).contiguous(memory_format=CL)) for c in (4, 8)]
    norm = AffineELU(randomised(nn.BatchNorm3d(12)).eval())
    with torch.inference_mode():
        native, gathered = affine_elu_parts(norm, parts), gather_parts(parts)
        monkeypatch.setattr(dense_parts, "load_library", lambda: None)
        fallback, gathered_fallback = affine_elu_parts(norm, parts), gather_parts(parts)
    torch.testing.assert_close(native, fallback, rtol=2e-6, atol=2e-6)
    assert torch.equal(gathered, gathered_fallback)
    x = torch.cat([p.tensor for p in parts], 1)
    expected = nn.functional.elu(x * norm.scale.view(1, -1, 1, 1, 1) + norm.shift.view(1, -1, 1, 1, 1))
    torch.testing.assert_close(native, expected, rtol=2e-6, atol=2e-6)


def test_wrong_parts_are_refused():
    parts = _parts(torch.float32)
    with pytest.raises(ValueError, match="32 channels expected, the parts have 16"):
        affine_elu_parts(AffineELU(nn.BatchNorm3d(32).eval()), parts[:1])
    with pytest.raises(ValueError, match="channels-last"):
        gather_parts([Part(torch.randn(1, 4, 2, 3, 3))])
    with pytest.raises(ValueError, match="share a dtype"):
        gather_parts([parts[0], Part(parts[2].tensor.double().contiguous(memory_format=CL))])
