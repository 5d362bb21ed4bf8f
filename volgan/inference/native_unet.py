"""The PET U-Net generator on the CPU without concatenation copies or interleaving passes.

The same function as :class:`~volgan.networks.PetUNetGenerator` (up to fp32 rounding), in
PyTorch alone (no compiled kernels):

* every layer runs channels-last, its BatchNorm folded into the convolution's weights and its
  activation in place;
* below the top level, the buffer each decoder level concatenates into is allocated once: the
  encoder's skip output is copied into its second half, and the decoder's transposed convolution
  (sub-pixel form, :class:`~volgan.inference.subpixel.SubPixelConvTranspose3d`) writes its
  interleaved, ReLU'd output straight into the first half (no ``torch.cat``, no separate
  interleaved tensor);
* at the top level the concatenation would be the largest tensor of the pass (twice the first
  level's width at half resolution) and the head's output is narrow, so the head is two
  convolutions instead, one over each half, summed: ``conv(cat(a, b), w) = conv(a, w_a) + conv(b, w_b)``.
  On a 192x224x192 volume (small preset) that took 53 ms against 75 ms for concatenating and
  one convolution, and 132 MB less memory;
* the head's residual addition and ReLU run in place.

Set-up folds and rearranges weights only (no tracing or deep copies), which matters for the
one-window whole-volume runs that fast mode makes for PET.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from volgan.inference.optimise import is_eval_batchnorm
from volgan.inference.subpixel import SubPixelConvTranspose3d, is_subpixel_convertible
from volgan.networks.pet_cgan import ConcatenatedGenerator, PetUNetGenerator, crop_padding, pad_to_multiple

CHANNELS_LAST = torch.channels_last_3d


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
    """

    winograd = False

    def __init__(self, network: PetUNetGenerator):
        self.multiple, self.residual = network.multiple, network.residual
        self.encoder = []
        for down in network.encoder:
            conv = fuse_conv_bn_eval(down[0], down[1]) if len(down) == 3 else down[0]
            self.encoder.append((conv.weight.detach().float().to(memory_format=CHANNELS_LAST),
                                 None if conv.bias is None else conv.bias.detach().float(),
                                 (conv.stride, conv.padding, conv.dilation), float(down[-1].negative_slope)))
        self.decoder = [SubPixelConvTranspose3d(fuse_conv_bn_eval(up[0], up[1], transpose=True)).float()
                        .to(memory_format=CHANNELS_LAST) for up in network.decoder]
        self.head = SubPixelConvTranspose3d(network.head).float()
        width = network.channels[0]  # the head's input: (decoder output, first encoder output)
        self.head_weights = [w.to(memory_format=CHANNELS_LAST) for w in self.head.weight.split(width, dim=1)]

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        padded, pads = pad_to_multiple(x.float(), self.multiple)
        # one channel: the plain layout is already channels-last, and the first convolution's
        # channels-last weight makes oneDNN run (and return) channels-last
        y = padded if padded.shape[1] == 1 else padded.to(memory_format=CHANNELS_LAST)
        buffers = []  # levels 1 .. bottom - 1: (decoder output, encoder output) channels
        for level, (weight, bias, geometry, slope) in enumerate(self.encoder):
            y = F.leaky_relu_(F.conv3d(y, weight, bias, *geometry), slope)
            if level == 0:
                top = y
            elif level < len(self.encoder) - 1:
                buffers.append(torch.empty((y.shape[0], 2 * y.shape[1], *y.shape[2:]), memory_format=CHANNELS_LAST))
                buffers[-1][:, y.shape[1] :] = y
        for up, buffer in zip(self.decoder, reversed(buffers)):
            up.write(y, buffer[:, : buffer.shape[1] // 2], relu=True)
            y = buffer
        decoded = torch.empty(top.shape, memory_format=CHANNELS_LAST)
        self.decoder[-1].write(y, decoded, relu=True)
        del y
        padding = tuple(t - 1 for t in self.head.taps)
        z = F.conv3d(top, self.head_weights[1], self.head.bias, padding=padding)
        del top
        z += F.conv3d(decoded, self.head_weights[0], None, padding=padding)
        del decoded
        y = self.head.interleave(z)
        if self.residual:
            y += padded
        return crop_padding(y.clamp_min_(0), pads)


def native_pet_unet(network: PetUNetGenerator | ConcatenatedGenerator):
    """The native form of an eval-mode PET U-Net (or a chain of them), or ``None`` when the network
    is in training mode or not of the generator's structure."""
    stages = list(network.stages) if type(network) is ConcatenatedGenerator else [network]
    if network.training or not all(map(supported, stages)):
        return None
    forms = [NativePetUNet(stage) for stage in stages]
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
