"""The PET U-Net's last layer, residual and ReLU as one C pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from volgan.inference.cpu import native_kernels
from volgan.inference.cpu.subpixel import SubPixelConvTranspose3d
from volgan.inference.cpu.subpixel_head import SubPixelHead, head_kernel_applies

pytestmark = pytest.mark.skipif(native_kernels.load_library() is None, reason="no C compiler for volgan's kernels")
CL = torch.channels_last_3d


def _reference(conv, x, other, residual):
    with torch.no_grad():
        y = conv(torch.cat([x, other], 1))
    return (y + residual if residual is not None else y).clamp_min(0)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 2), (4, 6, 9), (5, 3, 10), (7, 4, 25)])
@pytest.mark.parametrize("batch, residual", [(1, True), (2, True), (1, False)])
def test_the_pass_computes_the_layer_with_residual_and_relu(shape, batch, residual):
    """Rows shorter than a block (edge positions only), one block, a block and a remainder, and
    overlapping blocks: every output voxel is ``relu(layer(cat(x, other)) + residual)``."""
    torch.manual_seed(0)
    conv = nn.ConvTranspose3d(7, 1, 4, stride=2, padding=1).eval()
    layer = SubPixelConvTranspose3d(conv)
    x, other = torch.randn(batch, 4, *shape), torch.randn(batch, 3, *shape)
    res = torch.randn(batch, 1, *(2 * s for s in shape)) if residual else None
    ref = _reference(conv, x, other, res)
    with torch.no_grad():
        z = layer.stride1_conv3d(slice(4, None))(other.contiguous(memory_format=CL)).contiguous(memory_format=CL)
    out = SubPixelHead(layer, slice(0, 4))(x.contiguous(memory_format=CL), z, res)
    assert out.shape == ref.shape and (ref > 0).any() and (ref == 0).any()
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5 * float(ref.abs().max()))
    # other layouts are copied, not refused
    torch.testing.assert_close(SubPixelHead(layer, slice(0, 4))(x, z.contiguous(), res), out, rtol=0, atol=0)


def test_shapes_that_do_not_match_are_refused():
    layer = SubPixelConvTranspose3d(nn.ConvTranspose3d(7, 1, 4, stride=2, padding=1))
    head = SubPixelHead(layer, slice(0, 4))
    x, z = torch.randn(1, 4, 3, 4, 5), torch.randn(1, 8, 4, 5, 6)
    with pytest.raises(ValueError, match="does not match this head"):
        head(x[:, :3], z)
    with pytest.raises(ValueError, match="does not match this head"):
        head(x, z[:, :, 1:])
    with pytest.raises(ValueError, match="residual"):
        head(x, z, torch.randn(1, 1, 6, 8, 9))


@pytest.mark.parametrize("conv", [
    nn.ConvTranspose3d(4, 2, 4, stride=2, padding=1),  # two output channels
    nn.ConvTranspose3d(4, 1, 4, stride=2, padding=0),
    nn.ConvTranspose3d(4, 1, 2, stride=2, padding=0),
    nn.ConvTranspose3d(4, 1, 6, stride=3, padding=1),
])
def test_other_layers_are_left_to_pytorch(conv):
    layer = SubPixelConvTranspose3d(conv)
    assert not head_kernel_applies(layer)
    with pytest.raises(ValueError, match="one-channel kernel-4"):
        SubPixelHead(layer, slice(0, 2))


def test_a_nan_stays_nan():
    """As in PyTorch's passes: a NaN voxel of the residual gives a NaN output voxel, not 0."""
    torch.manual_seed(0)
    conv = nn.ConvTranspose3d(7, 1, 4, stride=2, padding=1).eval()
    layer = SubPixelConvTranspose3d(conv)
    x, other = torch.randn(1, 4, 4, 5, 12), torch.randn(1, 3, 4, 5, 12)
    res = torch.randn(1, 1, 8, 10, 24)
    res[0, 0, 3, 4, 5] = res[0, 0, 0, 0, 0] = float("nan")  # one voxel of a block, one of an edge position
    with torch.no_grad():
        z = layer.stride1_conv3d(slice(4, None))(other)
    out = SubPixelHead(layer, slice(0, 4))(x, z, res)
    assert torch.equal(out.isnan(), _reference(conv, x, other, res).isnan()) and int(out.isnan().sum()) == 2


@pytest.mark.parametrize("shape", [(1, 1, 1), (4, 6, 9), (7, 4, 25)])
def test_the_bf16_pass_reads_bf16_and_computes_in_float32(shape):
    """The pass for the native U-Net in bf16 reads bf16 inputs (any CPU: the conversion is exact)
    and gives the float32 pass's result on the same values, up to float32 rounding."""
    torch.manual_seed(0)
    layer = SubPixelConvTranspose3d(nn.ConvTranspose3d(7, 1, 4, stride=2, padding=1).eval())
    x, z = torch.randn(2, 4, *shape).bfloat16(), torch.randn(2, 8, *(s + 1 for s in shape)).bfloat16()
    res = torch.randn(2, 1, *(2 * s for s in shape))
    out = SubPixelHead(layer, slice(0, 4), torch.bfloat16)(x.contiguous(memory_format=CL), z.contiguous(memory_format=CL), res)
    ref = SubPixelHead(layer, slice(0, 4))(x.float(), z.float(), res)
    assert out.dtype == torch.float32 and (ref > 0).any() and (ref == 0).any()
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6 * float(ref.abs().max()))
    # float32 inputs are rounded to bf16 first, as the native U-Net's activations are
    torch.testing.assert_close(SubPixelHead(layer, slice(0, 4), torch.bfloat16)(x.float(), z.float(), res), out,
                               rtol=0, atol=0)
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        SubPixelHead(layer, slice(0, 4), torch.float16)
