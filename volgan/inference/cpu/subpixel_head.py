"""The PET U-Net's last layer, its residual addition and its ReLU as one C pass.

The generator's head is a one-channel transposed convolution (kernel 4, stride 2, padding 1)
over the concatenation of the last decoder level's output and the first encoder output. Volgan's
native U-Net (:mod:`volgan.inference.cpu.native_unet`) computes it as two stride-1 convolutions, one
per half, in sub-pixel form (:mod:`volgan.inference.cpu.subpixel`): the 8 output channels are the 8
residues of the full-resolution output. In PyTorch the second half then adds into the first
half's result (a pass over it), the result is interleaved into a new full-resolution tensor (a
copy), the input is added (a pass) and a ReLU applied (a pass). With oneDNN that convolution has
8 output channels, too few to keep its vector units busy: 51-68 GFLOP/s on a 2-core AVX2 EPYC,
where its 32- to 128-channel convolutions ran at about 150.

:class:`SubPixelHead` does the second half, the addition of the first half's result, the
interleaving, the residual and the ReLU in one pass (``kernels/subpixel_head.c``): each position's
8 residues are one vector of 8 floats, and each is written straight to its output voxel; the pass
allocates only its output. It reads float32 or bfloat16 inputs (the native U-Net in either precision) and
computes in float32.
"""

from __future__ import annotations

import torch

from volgan.inference.cpu.native_kernels import load_library, run_jobs
from volgan.inference.cpu.subpixel import SubPixelConvTranspose3d

KERNELS = {torch.float32: "subpixel_head_f32", torch.bfloat16: "subpixel_head_bf16"}


def head_kernel_applies(layer: SubPixelConvTranspose3d) -> bool:
    """True if ``layer`` is of the form the C pass computes (one output channel, kernel 4, stride 2,
    padding 1 on every axis) and the C kernels build here."""
    form = (layer.out_channels == 1 and layer.stride == (2, 2, 2) and layer.taps == (2, 2, 2)
            and layer.padding == (1, 1, 1) and layer.weight.device.type == "cpu")
    return form and load_library() is not None


class SubPixelHead:
    """``relu(layer(cat(x, other)) + residual)`` from ``x``, the first input channels of ``layer``,
    and ``z``, the stride-1 convolution of the other channels (its bias included): the sub-pixel
    form of a layer for which :func:`head_kernel_applies`.

    Args:
        layer: the head in sub-pixel form.
        inputs: ``layer``'s input channels that ``x`` holds (a slice of its weight's inputs).
        dtype: the type of ``x`` and ``z`` the pass reads, ``torch.float32`` or ``torch.bfloat16``
            (the native U-Net in bf16); the weights, the arithmetic, the residual and the output
            are float32.
    """

    def __init__(self, layer: SubPixelConvTranspose3d, inputs: slice, dtype: torch.dtype = torch.float32):
        if not head_kernel_applies(layer):
            raise ValueError(f"the C head pass computes a one-channel kernel-4, stride-2, padding-1 layer, not {layer}")
        if dtype not in KERNELS:
            raise ValueError(f"the C head pass reads float32 or bfloat16, not {dtype}")
        w = layer.weight[:, inputs].float()  # (8 residues, channels, 2, 2, 2)
        self.channels, self.dtype = w.shape[1], dtype
        # [td][th][tw][channel][residue]: a position's residues are one vector
        self.weight = w.permute(2, 3, 4, 1, 0).contiguous()
        self.kernel = getattr(load_library(), KERNELS[dtype])

    def __call__(self, x: torch.Tensor, z: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(B, channels, D, H, W)``; ``z``: ``(B, 8, D + 1, H + 1, W + 1)``; ``residual``:
        ``(B, 1, 2 D, 2 H, 2 W)`` or None. Returns the output, ``(B, 1, 2 D, 2 H, 2 W)`` float32.
        Read in place when ``x`` and ``z`` are channels-last in this pass's type and the residual
        contiguous float32 (as the native U-Net passes them), else copied first."""
        b, channels, d, h, w = x.shape
        if channels != self.channels or tuple(z.shape) != (b, 8, d + 1, h + 1, w + 1):
            raise ValueError(f"input {tuple(x.shape)} or partial result {tuple(z.shape)} does not match this head "
                             f"(input (B, {self.channels}, D, H, W), partial result (B, 8, D + 1, H + 1, W + 1))")
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last_3d)
        z = z.to(self.dtype).contiguous(memory_format=torch.channels_last_3d)
        out = torch.empty((b, 1, 2 * d, 2 * h, 2 * w))
        if residual is not None:
            if residual.shape != out.shape:
                raise ValueError(f"residual {tuple(residual.shape)} does not match the output {tuple(out.shape)}")
            residual = residual.float().contiguous()
        for i in range(b):  # (channels-last: each sample's values are contiguous)
            args = (x[i].data_ptr(), channels, self.weight.data_ptr(), z[i].data_ptr(),
                    None if residual is None else residual[i].data_ptr(), out[i].data_ptr(), d, h, w)
            run_jobs(self.kernel, args, (d + 1) * (h + 1))
        return out
