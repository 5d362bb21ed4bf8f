from __future__ import annotations

import pytest
import torch
from torch import nn

from volgan.inference.cpu.subpixel import SubPixelConvTranspose3d, is_subpixel_convertible, subpixel_transposed_convolutions
from volgan.networks import PetUNetGenerator


@pytest.mark.parametrize(
    "kernel, stride, padding, bias",
    [(4, 2, 1, True), (4, 2, 0, False), (2, 2, 0, True), (3, 3, 1, True), (6, 3, 2, False),
     ((4, 2, 6), (2, 2, 3), (1, 0, 2), True), ((4, 1, 4), (2, 1, 2), (1, 0, 1), True)],
)
@pytest.mark.parametrize("shape", [(4, 7, 3), (1, 1, 1), (6, 5, 8)])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last_3d])
def test_subpixel_form_equals_the_transposed_convolution(kernel, stride, padding, bias, shape, memory_format):
    torch.manual_seed(0)
    conv = nn.ConvTranspose3d(5, 3, kernel, stride=stride, padding=padding, bias=bias).eval()
    x = torch.randn(2, 5, *shape)
    with torch.no_grad():
        ref = conv(x)
        out = SubPixelConvTranspose3d(conv).to(memory_format=memory_format)(x.contiguous(memory_format=memory_format))
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5 * float(ref.abs().max()))


@pytest.mark.parametrize(
    "kernel, stride, padding", [(4, 2, 1), (4, 2, 0), (3, 3, 1), ((4, 2, 6), (2, 2, 3), (1, 0, 2))],
)
@pytest.mark.parametrize("shape", [(4, 7, 3), (1, 1, 1)])
@pytest.mark.parametrize("relu", [False, True])
def test_scattering_into_a_channel_range_of_a_buffer(kernel, stride, padding, shape, relu):
    """``scatter`` puts the layer's output (optionally ReLU'd) from its stride-1 convolution into a
    channel range of a larger channels-last buffer and leaves the other channels alone."""
    torch.manual_seed(0)
    conv = nn.ConvTranspose3d(5, 3, kernel, stride=stride, padding=padding).eval()
    layer = SubPixelConvTranspose3d(conv).to(memory_format=torch.channels_last_3d)
    x = torch.randn(2, 5, *shape).contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        ref = conv(x)
    buffer = torch.randn(2, 7, *ref.shape[2:]).contiguous(memory_format=torch.channels_last_3d)
    before = buffer.clone()
    layer.scatter(layer.convolve(x), buffer[:, 2:5], relu=relu)
    torch.testing.assert_close(buffer[:, 2:5], ref.clamp_min(0) if relu else ref, rtol=0, atol=1e-5 * float(ref.abs().max()))
    assert torch.equal(buffer[:, :2], before[:, :2]) and torch.equal(buffer[:, 5:], before[:, 5:])
    with pytest.raises(ValueError, match="does not match"):
        layer.scatter(layer.convolve(x), buffer[:, 2:4])


@pytest.mark.parametrize(
    "conv",
    [nn.ConvTranspose3d(4, 4, 3, stride=2, padding=1),  # kernel not a multiple of the stride
     nn.ConvTranspose3d(4, 4, 4, stride=2, padding=1, output_padding=1),
     nn.ConvTranspose3d(4, 4, 4, stride=2, padding=1, groups=2),
     nn.ConvTranspose3d(4, 4, 4, stride=2, padding=1, dilation=2),
     nn.ConvTranspose3d(4, 4, 3, stride=1, padding=1),  # stride 1: nothing to gain
     nn.Conv3d(4, 4, 4, stride=2, padding=1)],
)
def test_other_layers_are_left_alone(conv):
    assert not is_subpixel_convertible(conv)
    with pytest.raises(ValueError, match="not a strided transposed convolution"):
        SubPixelConvTranspose3d(conv)
    net = nn.Sequential(conv)
    assert subpixel_transposed_convolutions(net) == (net, 0)


def test_pet_unet_in_subpixel_form_computes_the_same_function():
    """Every transposed convolution of the PET U-Net (decoder and head) is converted, in a copy."""
    torch.manual_seed(0)
    net = PetUNetGenerator(channels=(4, 8, 8), residual=True).eval()
    for p in net.parameters():
        nn.init.normal_(p, std=0.2)
    converted, count = subpixel_transposed_convolutions(net)
    assert count == 3
    assert not any(isinstance(m, nn.ConvTranspose3d) for m in converted.modules())
    assert sum(isinstance(m, nn.ConvTranspose3d) for m in net.modules()) == 3  # the original is unchanged
    x = torch.rand(2, 1, 13, 18, 9)
    with torch.no_grad():
        ref = net(x)
        torch.testing.assert_close(converted(x), ref, rtol=0, atol=1e-5 * float(ref.abs().max()))


def test_stride1_convolution_and_scatter_give_the_layer():
    """``stride1_conv3d`` is the layer's stride-1 convolution as a module (e.g. for a fused oneDNN
    call); ``scatter`` places its result, and refuses a result or an output of the wrong shape."""
    torch.manual_seed(0)
    conv = nn.ConvTranspose3d(5, 3, 4, stride=2, padding=1).eval()
    layer = SubPixelConvTranspose3d(conv)
    x = torch.randn(1, 5, 4, 6, 3)
    with torch.no_grad():
        ref = conv(x)
        z = layer.stride1_conv3d()(x)
    torch.testing.assert_close(z, layer.convolve(x), rtol=0, atol=1e-6 * float(z.abs().max()))
    out = torch.empty_like(ref)
    layer.scatter(z, out, relu=True)
    torch.testing.assert_close(out, ref.clamp_min(0), rtol=0, atol=1e-5 * float(ref.abs().max()))
    with pytest.raises(ValueError, match="does not match"):
        layer.scatter(z[:, :-1], out)
    with pytest.raises(ValueError, match="does not match"):
        layer.scatter(z, out[:, :, 1:])


@pytest.mark.parametrize("kernel, stride, padding", [(4, 2, 1), (3, 3, 1), ((4, 2, 6), (2, 2, 3), (1, 0, 2))])
@pytest.mark.parametrize("size", [1, 3, 4])
def test_the_layer_in_parts_of_residue_classes(kernel, stride, padding, size):
    """``stride1_conv3d(blocks=...)`` computes some residue classes only and ``scatter(blocks=...)``
    places them, leaving the other output positions alone: parts covering every class give the
    layer (so a large result need not exist at once)."""
    torch.manual_seed(0)
    conv = nn.ConvTranspose3d(5, 3, kernel, stride=stride, padding=padding).eval()
    layer = SubPixelConvTranspose3d(conv)
    x = torch.randn(2, 5, 4, 7, 3)
    with torch.no_grad():
        ref = conv(x)
    classes = layer.weight.shape[0] // layer.out_channels
    out = torch.full_like(ref, float("nan"))
    for start in range(0, classes, size):
        blocks = range(start, min(start + size, classes))
        part = layer.stride1_conv3d(blocks=blocks)
        assert part.out_channels == len(blocks) * 3
        with torch.no_grad():
            layer.scatter(part(x), out, relu=True, blocks=blocks)
        if blocks.stop < classes:  # positions of later classes not written yet
            assert out.isnan().any()
    torch.testing.assert_close(out, ref.clamp_min(0), rtol=0, atol=1e-5 * float(ref.abs().max()))
    with pytest.raises(ValueError, match="does not match"):
        layer.scatter(layer.stride1_conv3d(blocks=range(0, 1))(x), out, blocks=range(0, 2))
