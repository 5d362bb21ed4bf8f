"""Strided transposed 3D convolutions as stride-1 convolutions followed by a pixel shuffle.

A transposed convolution with kernel ``k`` and stride ``s`` (``k`` a multiple of ``s``) gives
output ``o`` (with ``q, r = divmod(o + padding, s)``) as ``sum_t x[q - t] * w[s * t + r]`` for
``t < T = k / s``: for each residue ``r`` a stride-1 correlation with ``T`` taps. So one stride-1
convolution with ``T^3`` taps and ``s^3 * out_channels`` outputs, on the input zero-padded by
``T - 1``, computes every residue class; interleaving the classes (a 3D pixel shuffle) and
cropping ``padding`` gives the transposed convolution exactly, with the same multiplications (up
to the ``T - 1`` border planes). On the CPU, PyTorch's transposed convolution scatters its
result (col2im) and ran the PET U-Net's decoder at a fraction of the speed of its convolutions;
this form runs at convolution speed (``benchmarks/README.md``).
"""

from __future__ import annotations

import copy
import itertools

import torch
import torch.nn.functional as F
from torch import nn


def is_subpixel_convertible(module: nn.Module) -> bool:
    """A 3D transposed convolution with stride > 1 that this form computes exactly: kernel a
    multiple of the stride on every axis, no dilation, groups or output padding."""
    return (
        isinstance(module, nn.ConvTranspose3d)
        and any(s > 1 for s in module.stride)
        and all(k % s == 0 for k, s in zip(module.kernel_size, module.stride))
        and all(d == 1 for d in module.dilation)
        and all(p == 0 for p in module.output_padding)
        and module.groups == 1
    )


class SubPixelConvTranspose3d(nn.Module):
    """Inference-only equivalent of a :class:`torch.nn.ConvTranspose3d` (see the module docstring)."""

    def __init__(self, conv: nn.ConvTranspose3d):
        super().__init__()
        if not is_subpixel_convertible(conv):
            raise ValueError(f"not a strided transposed convolution this form computes exactly: {conv}")
        self.stride, self.padding = tuple(conv.stride), tuple(conv.padding)
        self.taps = tuple(k // s for k, s in zip(conv.kernel_size, conv.stride))
        self.out_channels = conv.out_channels
        w = conv.weight.detach()  # (in, out, kd, kh, kw); kernel index s * t + r
        cin, cout = w.shape[:2]
        (sd, sh, sw), (td, th, tw) = self.stride, self.taps
        w = w.reshape(cin, cout, td, sd, th, sh, tw, sw)
        # output channel (rd, rh, rw, out); tap u = T - 1 - t (correlation over the padded input)
        w = w.flip(2, 4, 6).permute(3, 5, 7, 1, 0, 2, 4, 6).reshape(sd * sh * sw * cout, cin, td, th, tw)
        self.register_buffer("weight", w.contiguous())
        bias = None if conv.bias is None else conv.bias.detach().repeat(sd * sh * sw)
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.interleave(self.convolve(x))

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """The stride-1 convolution: every residue class of the output as a channel block."""
        return F.conv3d(x, self.weight, self.bias, padding=tuple(t - 1 for t in self.taps))

    def stride1_conv3d(self, inputs: slice = slice(None), *, bias: bool = True, blocks: range | None = None) -> nn.Conv3d:
        """:meth:`convolve` as a :class:`torch.nn.Conv3d` (a copy of the weights), e.g. for a
        fused oneDNN convolution whose result :meth:`scatter` or :meth:`interleave` then places.

        ``inputs``: only these input channels (the layer's share of one part of a concatenated
        input; the parts' convolutions sum to the layer's); ``bias=False``: without the bias
        (for all parts but one); ``blocks``: only these residue classes (output-channel blocks of
        :meth:`convolve`'s result, e.g. to compute and place a large result in parts)."""
        rows = slice(None) if blocks is None else slice(blocks.start * self.out_channels, blocks.stop * self.out_channels)
        weight = self.weight[rows, inputs]
        with_bias = bias and self.bias is not None
        # skip_init: no random initialisation of weights that are overwritten at once
        conv = torch.nn.utils.skip_init(nn.Conv3d, weight.shape[1], weight.shape[0], self.taps,
                                        padding=tuple(t - 1 for t in self.taps), bias=with_bias)
        with torch.no_grad():
            conv.weight.copy_(weight)
            if with_bias:
                conv.bias.copy_(self.bias[rows])
        return conv.to(self.weight.device).eval()

    def interleave(self, z: torch.Tensor) -> torch.Tensor:
        """The output from the stride-1 convolution's result ``z`` (:meth:`convolve`): one
        interleaving copy, in ``z``'s memory format, cropped by the padding (a view)."""
        (sd, sh, sw), (pd, ph, pw) = self.stride, self.padding
        b, _, qd, qh, qw = z.shape
        c = self.out_channels
        if z.is_contiguous(memory_format=torch.channels_last_3d):
            # memory (b, qd, qh, qw, rd, rh, rw, c): channels-last result
            y = z.permute(0, 2, 3, 4, 1).reshape(b, qd, qh, qw, sd, sh, sw, c).permute(0, 1, 4, 2, 5, 3, 6, 7)
            y = y.reshape(b, qd * sd, qh * sh, qw * sw, c).permute(0, 4, 1, 2, 3)
        else:
            y = z.reshape(b, sd, sh, sw, c, qd, qh, qw).permute(0, 4, 5, 1, 6, 2, 7, 3)
            y = y.reshape(b, c, qd * sd, qh * sh, qw * sw)
        od, oh, ow = self.output_shape(tuple(q - t + 1 for q, t in zip((qd, qh, qw), self.taps)))
        return y[:, :, pd : pd + od, ph : ph + oh, pw : pw + ow]

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Spatial output shape for an input of spatial ``shape``."""
        return tuple((n - 1) * s - 2 * p + t * s for n, s, p, t in zip(shape, self.stride, self.padding, self.taps))

    def scatter(self, z: torch.Tensor, out: torch.Tensor, *, relu: bool = False, blocks: range | None = None) -> None:
        """Place the stride-1 convolution's result ``z`` (:meth:`convolve`), through a ReLU if
        ``relu``, into ``out``: a tensor or view of the output's shape (e.g. a channel range of a
        concatenation buffer), without an interleaved copy. Each residue class of output
        positions is one strided copy from ``z``. ``blocks``: the residue classes ``z`` holds (the
        result of ``stride1_conv3d(blocks=...)``); the others' positions are left as they are."""
        c, (sd, sh, sw) = self.out_channels, self.stride
        blocks = range(sd * sh * sw) if blocks is None else blocks
        spatial = tuple(q - t + 1 for q, t in zip(z.shape[2:], self.taps))
        expected = (z.shape[0], c, *self.output_shape(spatial))
        if tuple(out.shape) != expected or z.shape[1] != len(blocks) * c:
            raise ValueError(f"output {tuple(out.shape)} or result {tuple(z.shape)} does not match this layer "
                             f"({len(blocks) * c} result channels, output {expected})")
        for residue in itertools.product(range(sd), range(sh), range(sw)):
            # output positions j, j + s, j + 2 s, ... of each axis: padded position u = j + p is
            # stride-1 position u // s, residue class u % s (the weight's output-channel block)
            u = [j + p for j, p in zip(residue, self.padding)]
            block = ((u[0] % sd) * sh + u[1] % sh) * sw + u[2] % sw
            if block not in blocks:
                continue
            block -= blocks.start
            dst = out[:, :, residue[0] :: sd, residue[1] :: sh, residue[2] :: sw]
            n = dst.shape[2:]
            src = z[:, block * c : (block + 1) * c, u[0] // sd : u[0] // sd + n[0], u[1] // sh : u[1] // sh + n[1],
                    u[2] // sw : u[2] // sw + n[2]]
            if relu:
                torch.clamp_min(src, 0, out=dst)
            else:
                dst.copy_(src)


def subpixel_transposed_convolutions(network: nn.Module) -> tuple[nn.Module, int]:
    """A copy of ``network`` with every convertible transposed convolution in sub-pixel form, and
    how many were converted (``network`` itself when none is)."""
    names = [name for name, m in network.named_modules() if is_subpixel_convertible(m)]
    if not names:
        return network, 0
    network = copy.deepcopy(network)
    for name in names:
        network.set_submodule(name, SubPixelConvTranspose3d(network.get_submodule(name)))
    return network, len(names)
