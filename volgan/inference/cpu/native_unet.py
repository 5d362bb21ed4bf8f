"""The PET U-Net generator on the CPU without concatenation copies or interleaving passes.

The same function as :class:`~volgan.networks.PetUNetGenerator` (up to fp32 rounding), in
PyTorch, plus one C pass for the head where volgan's kernels build (none needed). In fp32, or in
bf16 where oneDNN runs bf16 convolutions (fast mode on CPUs with AVX-512 BF16 or AMX): then every
convolution and the activations between them are bf16, and the head pass reads them and computes
in float32, with the input's float32 residual:

* every layer runs channels-last, its BatchNorm folded into the convolution's weights. Where
  PyTorch has oneDNN's fused convolutions (:func:`~volgan.inference.cpu.fused_pointwise.fused_pointwise_available`)
  each convolution is one call to them, its activation applied as a post-op. That call also
  bypasses PyTorch's dispatch, which runs convolutions of small one-window inputs (batch 1 and
  ``N * C * D * H <= 20480``: the decoder and head of a 64^3 window) in its reference
  implementation instead of oneDNN (``benchmarks/native_convolutions.py``). Otherwise ``F.conv3d`` and in-place activations;
* below the top level, the buffer each decoder level concatenates into is allocated once: the
  encoder's skip output is copied into its second half, and the decoder's transposed convolution
  (sub-pixel form, :class:`~volgan.inference.cpu.subpixel.SubPixelConvTranspose3d`) scatters its
  ReLU'd output straight into the first half (no ``torch.cat``, no separate interleaved tensor);
* at the top level the concatenation would be the largest tensor of the pass (twice the first
  level's width at half resolution) and the head's output is narrow, so the head is two
  convolutions instead, one over each half, the second adding into the first's output:
  ``conv(cat(a, b), w) = conv(a, w_a) + conv(b, w_b)``, with no concatenated tensor.
  The half over the first encoder output runs before the decoder, and that output's storage then
  receives the last decoder level's output: one full-resolution tensor fewer;
* the last decoder level's stride-1 convolution, whose result is the largest tensor of the pass,
  runs in parts of at least 32 output channels (residue classes), each placed before the next
  is computed: the parts fit in memory that earlier levels freed, at the same speed;
* with the C kernels (:mod:`volgan.inference.cpu.native_kernels`), the head's other half, the sum,
  the interleaving, the residual addition and the ReLU are one pass
  (:mod:`volgan.inference.cpu.subpixel_head`), which allocates only its output, once the last
  decoder level's input is freed; without them those run in PyTorch, the addition and ReLU in
  place.

Set-up folds and rearranges weights only (no tracing or deep copies), which matters for the
one-window whole-volume runs that fast mode makes for PET.

In bf16 every layer is first widened to a multiple of :data:`BF16_CHANNEL_MULTIPLE` channels
(:func:`widened`: zero weights, the same function), so that oneDNN's bf16 convolutions only see
the channel blockings of the shipped presets. With odd widths (5 and 7) the output of oneDNN's
AMX bf16 convolutions held values from memory they never wrote (up to 7e28 on an Intel Xeon with
AMX); the widened form avoids those channel tails on every CPU.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from volgan.inference.cpu.batchnorm import is_eval_batchnorm
from volgan.inference.cpu.fused_pointwise import (
    PlainConv3d,
    PointwiseConv3d,
    channels_last_3d,
    fp32_convolution,
    fused_pointwise_available,
)
from volgan.inference.cpu.native import register_native
from volgan.inference.cpu.subpixel import SubPixelConvTranspose3d, is_subpixel_convertible
from volgan.inference.cpu.subpixel_head import SubPixelHead, head_kernel_applies
from volgan.networks.pet_cgan import ConcatenatedGenerator, PetUNetGenerator, crop_padding, pad_to_multiple

CHANNELS_LAST = torch.channels_last_3d
# the last decoder level's convolution runs in parts of at least this many output channels
# (narrower parts make oneDNN's convolution slower)
PART_CHANNELS = 32
# in bf16, every layer's width is rounded up to a multiple of this many channels (see the module docstring)
BF16_CHANNEL_MULTIPLE = 16


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _halves(width: int, wide: int) -> torch.Tensor:
    """Where the channels of a concatenation of two ``width``-channel halves go when each half is
    ``wide`` channels."""
    return torch.cat([torch.arange(width), wide + torch.arange(width)])


@torch.no_grad()
def _embed(target: torch.Tensor, source: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor | None = None) -> None:
    """``target`` zeroed, then ``source`` written into its rows ``rows`` (and columns ``columns``
    of the second axis)."""
    target.zero_()
    if columns is None:
        target[rows] = source
    else:
        target[rows[:, None], columns[None, :]] = source


def widened(network: PetUNetGenerator, multiple: int) -> PetUNetGenerator:
    """``network`` with every layer's width rounded up to a multiple of ``multiple`` (the image
    channels as they are): the added channels have zero weights, biases and BatchNorm shifts, so
    they hold zeros and the output is the same. ``network`` itself when its widths already are."""
    widths = tuple(_round_up(c, multiple) for c in network.channels)
    if widths == tuple(network.channels):
        return network
    in_channels = network.encoder[0][0].in_channels
    wide = PetUNetGenerator(channels=widths, residual=network.residual, in_channels=in_channels).eval()
    narrow_widths = tuple(network.channels)
    image = torch.arange(in_channels)
    for level, (down, new) in enumerate(zip(network.encoder, wide.encoder)):
        rows = torch.arange(narrow_widths[level])
        columns = image if level == 0 else torch.arange(narrow_widths[level - 1])
        _embed(new[0].weight, down[0].weight, rows, columns)
        if down[0].bias is not None:
            _embed(new[0].bias, down[0].bias, rows)
        if len(down) == 3:
            _copy_batchnorm(new[1], down[1], rows)
    top = len(narrow_widths) - 1
    for index, (up, new) in enumerate(zip(network.decoder, wide.decoder)):
        level = top - index  # the encoder level this decoder level reads
        inputs = (torch.arange(narrow_widths[level]) if level == top
                  else _halves(narrow_widths[level], widths[level]))
        _embed(new[0].weight, up[0].weight, inputs, torch.arange(narrow_widths[level - 1]))
        _copy_batchnorm(new[1], up[1], torch.arange(narrow_widths[level - 1]))
    _embed(wide.head.weight, network.head.weight, _halves(narrow_widths[0], widths[0]), image)
    _embed(wide.head.bias, network.head.bias, image)
    return wide


@torch.no_grad()
def _copy_batchnorm(target: nn.BatchNorm3d, source: nn.BatchNorm3d, rows: torch.Tensor) -> None:
    """``source``'s statistics and affine in ``target``'s channels ``rows``; the others map zero to
    zero (mean 0, shift 0)."""
    target.eps = source.eps
    target.running_var.fill_(1.0)
    target.running_var[rows] = source.running_var
    _embed(target.running_mean, source.running_mean, rows)
    if target.affine:
        target.weight.fill_(1.0)
        target.weight[rows] = source.weight
        _embed(target.bias, source.bias, rows)


def _down_supported(down: nn.Module) -> bool:
    if not (isinstance(down, nn.Sequential) and len(down) in (2, 3) and isinstance(down[-1], nn.LeakyReLU)):
        return False
    conv = down[0]
    plain = isinstance(conv, nn.Conv3d) and conv.groups == 1 and conv.padding_mode == "zeros"
    return plain and (len(down) == 2 or is_eval_batchnorm(down[1]))


def _up_supported(up: nn.Module) -> bool:
    return (isinstance(up, nn.Sequential) and len(up) == 3 and is_subpixel_convertible(up[0])
            and is_eval_batchnorm(up[1]) and isinstance(up[2], nn.ReLU))


def supported(network: PetUNetGenerator) -> bool:
    """An eval-mode PET U-Net of the structure this form computes (the generator's own)."""
    return (type(network) is PetUNetGenerator and not network.training
            and all(map(_down_supported, network.encoder)) and all(map(_up_supported, network.decoder))
            and is_subpixel_convertible(network.head))


class NativePetUNet:
    """Callable ``(B, C, D, H, W)`` float32 CPU tensor -> output of the U-Net on it.

    Build it with :func:`native_pet_unet`, which checks that the network allows it.

    Args:
        network: an eval-mode :class:`~volgan.networks.PetUNetGenerator` (see :func:`supported`).
        fused: convolutions through oneDNN's fused convolutions; ``False``: ``F.conv3d`` and
            separate in-place activations (:class:`PlainConv3d`); ``None``: fused where this
            PyTorch has them.
        dtype: the precision of the convolutions and of the activations between them:
            ``torch.float32`` or ``torch.bfloat16`` (oneDNN's fused convolutions only, see
            :func:`native_dtype_available`), its layers widened to multiples of
            :data:`BF16_CHANNEL_MULTIPLE` channels (:func:`widened`). The input, the residual
            addition and the output stay float32.
    """

    winograd = False

    def __init__(self, network: PetUNetGenerator, *, fused: bool | None = None, dtype: torch.dtype = torch.float32):
        if dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"the native U-Net runs in float32 or bfloat16, not {dtype}")
        if dtype != torch.float32 and (fused is False or not native_dtype_available(dtype)):
            raise ValueError(f"the native U-Net in {dtype} needs oneDNN's fused {dtype} convolutions, which this "
                             "PyTorch build or CPU does not have")
        if dtype != torch.float32:
            network = widened(network, BF16_CHANNEL_MULTIPLE)
        self.multiple, self.residual, self.dtype = network.multiple, network.residual, dtype

        def convolution(conv: nn.Conv3d, unary: str = "none", slope: float = 0.0) -> PointwiseConv3d | PlainConv3d:
            if dtype != torch.float32:
                return PointwiseConv3d(conv.float(), dtype, unary, slope)
            return fp32_convolution(conv, unary, slope, fused=fused)

        self.encoder = [convolution(fuse_conv_bn_eval(down[0], down[1]) if len(down) == 3 else down[0], "leaky_relu",
                                    float(down[-1].negative_slope)) for down in network.encoder]
        # each decoder level: its sub-pixel form (which places the result) and that form's
        # stride-1 convolution with the ReLU, as (residue classes, convolution) parts
        self.decoder = []
        for level, up in enumerate(network.decoder):
            layer = SubPixelConvTranspose3d(fuse_conv_bn_eval(up[0], up[1], transpose=True))
            classes = math.prod(layer.stride)
            size = math.ceil(PART_CHANNELS / layer.out_channels) if level == len(network.decoder) - 1 else classes
            parts = [range(start, min(start + size, classes)) for start in range(0, classes, size)]
            self.decoder.append((layer, [(blocks, convolution(layer.stride1_conv3d(blocks=blocks), "relu"))
                                         for blocks in parts]))
        self.head = SubPixelConvTranspose3d(network.head)
        # the head's input is (decoder output, first encoder output): one part per half, the
        # bias in the one over the encoder output, which runs first; the C pass does the other
        width = network.channels[0]
        self.top_part = convolution(self.head.stride1_conv3d(slice(width, None)))
        if head_kernel_applies(self.head):
            self.head_pass, self.decoded_part = SubPixelHead(self.head, slice(0, width), dtype), None
        else:
            self.head_pass, self.decoded_part = None, convolution(self.head.stride1_conv3d(slice(0, width), bias=False))
        self.fused = isinstance(self.top_part, PointwiseConv3d)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        padded, pads = pad_to_multiple(x.float(), self.multiple)
        y = channels_last_3d(padded)  # a view when there is one channel (the first layer casts it)
        buffers = []  # levels 1 .. bottom - 1: (decoder output, encoder output) channels
        for level, convolution in enumerate(self.encoder):
            y = convolution(y)
            if level == 0:
                top = y
            elif level < len(self.encoder) - 1:
                buffers.append(torch.empty((y.shape[0], 2 * y.shape[1], *y.shape[2:]), dtype=self.dtype,
                                           memory_format=CHANNELS_LAST))
                buffers[-1][:, y.shape[1] :] = y
        # the head's half over the first encoder output now, so that this output's storage can
        # hold the last decoder level's output (same shape) instead of a new tensor
        z = self.top_part(top)
        for layer, parts in self.decoder:
            # each level into the first half of the next level's buffer, the last one into top's
            # storage; the buffer it read is then freed (the list no longer holds it)
            buffer = buffers.pop() if buffers else top
            out = top if buffer is top else buffer[:, : buffer.shape[1] // 2]
            for blocks, convolution in parts:
                layer.scatter(convolution(y), out, blocks=blocks)
            y = buffer
        decoded = y
        del y, top
        if self.head_pass is not None:
            return crop_padding(self.head_pass(decoded, z, padded if self.residual else None), pads)
        self.decoded_part.accumulate(decoded, z)
        del decoded
        y = self.head.interleave(z).float()
        if self.residual:
            y += padded
        return crop_padding(y.clamp_min_(0), pads)


def native_dtype_available(dtype: torch.dtype) -> bool:
    """True if the native U-Net runs in ``dtype`` here: float32 always, bfloat16 where oneDNN's
    fused convolutions run it (CPUs with AVX-512 BW/VL/DQ or AVX-NE-CONVERT)."""
    return dtype == torch.float32 or (dtype == torch.bfloat16 and fused_pointwise_available(dtype))


def native_pet_unet(network: PetUNetGenerator | ConcatenatedGenerator, dtype: torch.dtype = torch.float32):
    """The native form of an eval-mode PET U-Net (or a chain of them) in ``dtype``, or ``None`` when
    the network is in training mode, not of the generator's structure, or ``dtype`` does not run
    here (:func:`native_dtype_available`)."""
    stages = list(network.stages) if type(network) is ConcatenatedGenerator else [network]
    if network.training or not all(map(supported, stages)) or not native_dtype_available(dtype):
        return None
    forms = [NativePetUNet(stage, dtype=dtype) for stage in stages]
    if len(forms) == 1:
        return forms[0]
    return NativeChain(forms)


class NativeChain:
    """Stages applied one after the other (:class:`~volgan.networks.pet_cgan.ConcatenatedGenerator`)."""

    winograd = False

    def __init__(self, stages: list[NativePetUNet]):
        self.stages = stages

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x


@register_native(PetUNetGenerator, ConcatenatedGenerator)
def _build(network: PetUNetGenerator | ConcatenatedGenerator, dtype: torch.dtype, winograd: bool) -> NativePetUNet | NativeChain | None:
    """The registered builder: the PET U-Net's form has no Winograd variant."""
    return native_pet_unet(network, dtype)
