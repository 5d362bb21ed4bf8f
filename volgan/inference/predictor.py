"""Whole-volume sliding-window inference that returns results on the input grid, in input units."""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from volgan.data.modality_normalise import SuvScaler
from volgan.data.normalise import LinearScale, PercentileScaler
from volgan.inference.allocator import keep_freed_memory
from volgan.inference.buffered_dense import BufferedDenseBlock, buffer_dense_blocks
from volgan.inference.concat_pointwise import ConcatPointwiseConv3d, split_concat_pointwise
from volgan.inference.depth_major import depth_major_network
from volgan.inference.forward_guard import Verdict, check_form, finite_where_input_is
from volgan.inference.fused_pointwise import (
    PointwiseConv3d,
    fold_batchnorm_after_add,
    fuse_pointwise,
    fused_pointwise_available,
)
from volgan.inference.mixed_precision import cheapest_convolutions, convolution_flops, keep_cheapest_in_fp32
from volgan.inference.native import native_network
from volgan.inference.native_kernels import load_library
from volgan.inference.norm_elu import AffineELU, fuse_norm_elu
from volgan.inference.onnx_backend import OnnxRuntimeForward, onnxruntime_available
from volgan.inference.optimise import cpu_has_fast_bf16, fast_precision, fold_batchnorm
from volgan.inference.stitch import sliding_window
from volgan.inference.subpixel import subpixel_transposed_convolutions
from volgan.inference.tiling import WindowPlan, fitted_plan, grid_plan
from volgan.inference.winograd import worth_winograd
from volgan.io.volume import Volume

logger = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# precisions whose convolutions run fused through oneDNN on the CPU (PyTorch backend, channels-last)
FUSED_PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
# fast mode's large windows are batched only up to this many voxels per forward pass (two 64^3
# windows): activations scale with it, and two 104x120x104 windows took 17 GB in ONNX Runtime
FAST_BATCH_VOXELS = 2 * 64**3
BACKENDS = ("auto", "native", "onnxruntime", "torch")
# precisions of volgan's native CPU forms (bf16: the PET U-Net only, where oneDNN runs it)
NATIVE_PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def load_generator_weights(network: nn.Module, checkpoint: str | os.PathLike, key: str = "generator") -> nn.Module:
    """Load a state dict (plain, or under ``key`` in a training checkpoint) with ``weights_only=True``."""
    state = torch.load(os.fspath(checkpoint), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and key in state and isinstance(state[key], dict):
        state = state[key]
    network.load_state_dict(state)
    return network


class Predictor:
    """Run a generator over a whole volume of any size, window by window.

    The input is normalised window by window (by default: percentile scaling fitted on the
    input), the windows' outputs are blended with Gaussian weights into a host buffer, and the
    result is mapped back to the input's units on the input's grid (same shape and affine).
    Device memory depends on the window size only; host memory is the input plus one float32
    volume. BatchNorm layers that follow a convolution (plain or transposed) are folded into it
    (same function, fewer passes). In fp32 on the CPU, networks with 3x3x3 convolutions run with
    Winograd F(4, 3) along depth (half their FLOPs; ``winograd=False`` or ``backend="torch"`` to
    opt out): mDCSRN and RED-WGAN in volgan's native form (:mod:`volgan.inference.native`:
    channels-last PyTorch 2D convolutions and fused C passes, needs a C compiler), other networks
    that allow the depth-major rewrite (:mod:`volgan.inference.depth_major`) in ONNX Runtime when
    it is installed (also the fallback without a C compiler). The PET U-Net runs in its native
    form on the CPU (:mod:`volgan.inference.native_unet`: oneDNN's convolutions, no concatenation
    copies, its head one C pass where the kernels build; no compiler needed), in fp32, and in fast
    mode in bf16 where oneDNN runs bf16 convolutions (CPUs with AVX-512 BF16 or AMX). Other
    networks run in PyTorch, on the CPU with strided transposed convolutions as stride-1
    convolutions plus a pixel shuffle (:mod:`volgan.inference.subpixel`), which is exact and
    faster there.

    Two speeds:

    * default (``fast=False``): MONAI's window grid (``roi_size``, ``overlap``) and blending, in
      fp32; results match ``monai.inferers.SlidingWindowInferer`` on the same network.
    * ``fast=True``: windows as large as ``max_window`` overlapping by ``margin`` voxels (far
      fewer redundant voxels), channels-last 3D for PyTorch, and reduced precision where the
      hardware has it (bf16 on CUDA and on CPUs with native bf16; fp32 on CPUs without, where
      emulated bf16 is slower). On the CPU (PyTorch backend, channels-last) the convolutions
      then run through oneDNN with the activation or skip addition after them fused in, each
      layer's weights cast once (:mod:`volgan.inference.fused_pointwise`; ``Predictor.fused``),
      and a BatchNorm followed by an ELU runs as one C pass (:mod:`volgan.inference.norm_elu`,
      any precision, when the C kernels build; ``Predictor.norm_elu``). mDCSRN's dense blocks
      then run without concatenation copies, from parts gathered once, their narrow convolutions
      two output depths at a time (:mod:`volgan.inference.buffered_dense`;
      ``Predictor.buffered_dense``), and its reconstruction layer sums one 1x1x1 convolution per
      level instead of concatenating them (:mod:`volgan.inference.concat_pointwise`;
      ``Predictor.split_concat``).
      Outputs differ slightly near window seams; see the README for measured differences. Use
      fp32 default mode for quantitative work.

    Every form other than the plain network (native, ONNX Runtime, rewritten layers, reduced
    precision) first runs on a probe input next to the plain network in fp32; beyond its
    precision's bound it is discarded with one warning and the plain network runs
    (:mod:`volgan.inference.forward_guard`; ``Predictor.guard`` holds the verdict). A window whose
    output has NaN or infinite values although its input had none also discards the form, and
    from the plain network raises ``FloatingPointError``.

    Args:
        network: the generator (fully convolutional, ``(B, 1, D, H, W)`` -> same shape).
        checkpoint: optional weights file, loaded with ``weights_only=True``.
        roi_size: window size of the default grid (and the minimum padded size for small volumes).
        overlap: window overlap fraction of the default grid.
        sw_batch_size: windows per forward pass (in fast mode at most ``FAST_BATCH_VOXELS`` voxels).
        mode: blending, ``"gaussian"`` (default) or ``"constant"``.
        device: where the network runs (default: CUDA if available, else CPU).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` autocast; ``None``: fp32, or the fast
            mode's choice for the device.
        channels_last: channels-last 3D memory format (``None``: on in fast mode).
        fast: the fast mode described above.
        max_window: largest window per axis in fast mode.
        margin: overlap of fast-mode windows in voxels (at least twice the network's receptive
            radius keeps zero-padding effects out of the blended result).
        backend: ``"auto"`` (on the CPU: ``"native"`` for the PET U-Net in fp32 or bf16, and in
            fp32 for mDCSRN and RED-WGAN when the C kernels build, else ONNX Runtime when
            installed and the network has a depth-major Winograd rewrite, else PyTorch),
            ``"native"``, ``"onnxruntime"`` or ``"torch"``.
        winograd: on the CPU in fp32, run 3x3x3 convolutions as depth Winograd (natively or in
            ONNX Runtime; same function up to fp32 rounding); ``False`` with ``backend="auto"``
            runs PyTorch, with ``backend="onnxruntime"`` ONNX Runtime's direct convolutions.
        fp32_share: in bf16/fp16, the cheapest convolutions, up to this share of the network's
            FLOPs, run in fp32 (:mod:`volgan.inference.mixed_precision`: on RED-WGAN its four
            narrowest layers, 4.9 % of the FLOPs, carried most of the bf16 rounding error under
            autocast; its bundle sets 0.03 on CUDA, 0 on the CPU, where the fused layers round
            once each); ``Predictor.fp32_layers`` names them; 0 (default): every layer in
            reduced precision.
        normaliser: object with ``fit(array) -> LinearScale`` (default: ``PercentileScaler()``).
            One that needs the volume's metadata (e.g. :class:`~volgan.data.SuvScaler`, whose
            SUV factor comes from DICOM headers) also has ``fit_volume(volume) -> LinearScale``,
            which :meth:`predict` uses instead, and may have ``output_volume(volume) -> Volume``
            to convert predictions (e.g. to SUV).

    Examples::

        >>> from volgan.networks import RedWganGenerator
        >>> pred = Predictor(RedWganGenerator("small"), roi_size=(16, 16, 16), device="cpu")
        >>> pred.predict_array(np.random.rand(20, 24, 18).astype("float32")).shape
        (20, 24, 18)
    """

    def __init__(
        self,
        network: nn.Module,
        *,
        checkpoint: str | os.PathLike | None = None,
        roi_size: Sequence[int] = (64, 64, 64),
        overlap: float = 0.25,
        sw_batch_size: int = 2,
        mode: str = "gaussian",
        device: str | torch.device | None = None,
        precision: str | None = None,
        channels_last: bool | None = None,
        fast: bool = False,
        max_window: Sequence[int] = (128, 128, 128),
        margin: int = 16,
        backend: str = "auto",
        winograd: bool = True,
        fp32_share: float = 0.0,
        normaliser: PercentileScaler | SuvScaler | None = None,
    ):
        self.device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.fast = bool(fast)
        self.precision = precision or (fast_precision(self.device) if self.fast else "fp32")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        if self.device.type == "cpu" and self.precision == "bf16" and not cpu_has_fast_bf16():
            logger.warning("bf16 on this CPU is emulated (no AVX-512 BF16 or AMX): far slower than fp32")
        if checkpoint is not None:
            load_generator_weights(network, checkpoint)
        network = network.eval()
        self.roi_size = tuple(int(s) for s in roi_size)
        self.overlap, self.sw_batch_size, self.mode = float(overlap), int(sw_batch_size), mode
        self.max_window, self.margin = tuple(int(s) for s in max_window), int(margin)
        self.normaliser = PercentileScaler() if normaliser is None else normaliser
        cpu_fp32 = self.device.type == "cpu" and self.precision == "fp32"
        use_winograd = cpu_fp32 and winograd
        native_dtype = NATIVE_PRECISIONS.get(self.precision) if self.device.type == "cpu" else None
        self._native = (native_network(network, winograd, native_dtype)
                        if native_dtype is not None and backend in ("auto", "native") else None)
        # the native form copies what it needs; other backends run a folded copy of the network
        # (moved and converted below: never the caller's module itself)
        self.network = network
        self._reference, self._folded = network, False
        if self._native is None:
            folded = fold_batchnorm(network)
            self._folded = folded is not network
            self.network = (copy.deepcopy(network) if folded is network else folded).to(self.device)
        try_rewrite = (use_winograd and self._native is None and backend in ("auto", "onnxruntime")
                       and onnxruntime_available() and any(map(worth_winograd, network.modules())))
        rewritten = depth_major_network(self.network) if try_rewrite else None
        self.backend = self._choose_backend(backend, rewritten is not None)
        self.winograd = (self._native.winograd if self.backend == "native"
                         else self.backend == "onnxruntime" and rewritten is not None)
        # the rewrite's Python code depends on the depth only: exported with a small plane
        self._onnx = None if self.backend != "onnxruntime" else OnnxRuntimeForward(
            rewritten if rewritten is not None else self.network, plane_dynamic=rewritten is not None)
        self.subpixel, self.fp32_layers, self.fused = 0, [], False
        self.channels_last = self.fast if channels_last is None else bool(channels_last)
        reduced = self.backend == "torch" and PRECISIONS[self.precision] is not None
        flops = self._convolution_flops() if reduced and fp32_share > 0 else None
        # the narrow layers next to the image set most of the rounding error
        fp32_layers = cheapest_convolutions(flops, fp32_share) if flops else []
        torch_cpu = self.backend == "torch" and self.device.type == "cpu"
        fusable = (torch_cpu and self.channels_last and self.precision in FUSED_PRECISIONS
                   and fused_pointwise_available(FUSED_PRECISIONS[self.precision]))
        self.buffered_dense = self.split_concat = False
        if fusable and load_library() is not None:
            # mDCSRN's dense blocks from parts, narrow convolutions two depths at a time
            self.network = buffer_dense_blocks(self.network, FUSED_PRECISIONS[self.precision])
            self.buffered_dense = any(isinstance(m, BufferedDenseBlock) for m in self.network.modules())
        if torch_cpu:
            # PyTorch's CPU transposed convolutions scatter (col2im); as stride-1 convolutions
            # plus a pixel shuffle the PET U-Net ran 1.2-1.3x faster
            self.network, self.subpixel = subpixel_transposed_convolutions(self.network)
        if fusable:
            # mDCSRN's reconstruction: one 1x1x1 convolution per level, summed, instead of a concatenation
            self.network = split_concat_pointwise(self.network, FUSED_PRECISIONS[self.precision], fp32_layers)
            self.split_concat = any(isinstance(m, ConcatPointwiseConv3d) for m in self.network.modules())
            # activations and skip additions in the convolutions' oneDNN post-ops
            # (benchmarks/README.md); the buffered dense blocks' own oneDNN convolutions do not
            # count as fused
            before = {name for name, m in self.network.named_modules() if isinstance(m, PointwiseConv3d)}
            self.network = fuse_pointwise(fold_batchnorm_after_add(self.network), FUSED_PRECISIONS[self.precision], fp32_layers)
            fused = {name: m for name, m in self.network.named_modules()
                     if isinstance(m, PointwiseConv3d) and name not in before}
            self.fused = bool(fused)
            self.fp32_layers = [name for name in fp32_layers if name in fused and fused[name].dtype == torch.float32]
            if self.fused and len(self.fp32_layers) < len(fp32_layers):  # e.g. a convolution called twice
                logger.warning("fp32_share: %s not fused, left in %s", sorted(set(fp32_layers) - set(self.fp32_layers)),
                               self.precision)
        self.norm_elu = False
        if torch_cpu and load_library() is not None:
            # BatchNorm + ELU in one vectorised C pass: PyTorch's ELU took 64 % of mDCSRN's bf16 window
            self.network = fuse_norm_elu(self.network)
            self.norm_elu = any(isinstance(m, AffineELU) for m in self.network.modules())
        if fp32_layers and not self.fused:
            self.network, self.fp32_layers = keep_cheapest_in_fp32(self.network, fp32_share, flops)
        if self.device.type == "cpu":
            keep_freed_memory()  # large host allocations reused: no page faults on every pass
        if self.channels_last and self._native is None:
            self.network = self.network.to(memory_format=torch.channels_last_3d)
        # every form but the plain network proves itself on a probe first (forward_guard)
        self.guard: Verdict | None = None
        form = self.form_name()
        if form is not None:
            self.guard = check_form(form, self._run, self._reference_on_device(), precision=self.precision,
                                    device=self.device, network=self._reference)
            if not self.guard.passed:
                self._use_plain()

    def form_name(self) -> str | None:
        """What runs the network, e.g. ``"PetUNetGenerator as native NativePetUNet in bf16 on cpu"``;
        ``None`` for the plain network (PyTorch, fp32, no rewrite)."""
        if self.backend == "native":
            how = f"native {type(self._native).__name__}" + (" (Winograd)" if self.winograd else "")
        elif self.backend == "onnxruntime":
            how = "ONNX Runtime" + (" (depth-major Winograd)" if self.winograd else "")
        else:
            rewrites = [name for name, on in (
                ("folded BatchNorm", self._folded), ("sub-pixel transposed convolutions", self.subpixel),
                ("buffered dense blocks", self.buffered_dense), ("split concatenation", self.split_concat),
                ("fused convolutions", self.fused), ("BatchNorm+ELU pass", self.norm_elu),
                ("fp32 layers", self.fp32_layers), ("channels-last", self.channels_last),
                (f"{self.precision} autocast", self.precision != "fp32")) if on]
            if not rewrites:
                return None
            how = f"PyTorch with {', '.join(rewrites)}"
        return f"{type(self._reference).__name__} as {how} in {self.precision} on {self.device.type}"

    def _reference_on_device(self) -> nn.Module:
        """The caller's network (eval mode) on this predictor's device: itself when it is there."""
        parameter = next(self._reference.parameters(), None)
        if parameter is None or parameter.device == self.device:
            return self._reference
        return copy.deepcopy(self._reference).to(self.device)

    def _use_plain(self) -> None:
        """Run the caller's network as it is, in fp32 on this predictor's device (a copy when it
        lies elsewhere), with no accelerated form."""
        self.network = self._reference_on_device()
        self._native = self._onnx = None
        self.backend, self.precision, self.channels_last, self._folded = "torch", "fp32", False, False
        self.winograd = self.fused = self.buffered_dense = self.split_concat = self.norm_elu = False
        self.subpixel, self.fp32_layers = 0, []

    def _convolution_flops(self) -> dict[str, float]:
        """FLOPs per convolution, probed on a small input; empty (every layer in reduced precision,
        with a warning) for a network that cannot run on it."""
        try:
            return convolution_flops(self.network)
        except Exception as err:  # e.g. a network that needs larger inputs than the probe
            logger.warning("fp32_share ignored: the FLOP probe failed (%s: %s)", type(err).__name__, err)
            return {}

    def _choose_backend(self, backend: str, has_rewrite: bool) -> str:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "auto":
            # on the CPU in fp32: volgan's native forms (mDCSRN: 2x ONNX Runtime's depth-major
            # Winograd graph; the PET U-Net: PyTorch without concatenation copies, a third of the
            # set-up time), then ONNX Runtime with the Winograd rewrite (1.6-1.9x PyTorch); other
            # networks in PyTorch, which needs no export per window shape (benchmarks/README.md)
            if self._native is not None:
                return "native"
            return "onnxruntime" if has_rewrite else "torch"
        if backend == "native" and self._native is None:
            raise ValueError("backend='native' runs a PET U-Net generator on the CPU in fp32, or in bf16 where "
                             "oneDNN runs bf16 convolutions (AVX-512), and mDCSRN or RED-WGAN in fp32 with "
                             "winograd=True and a C compiler (cc, or $CC), see volgan.inference.native_kernels")
        if backend == "onnxruntime" and (self.device.type != "cpu" or self.precision != "fp32"):
            raise ValueError("the onnxruntime backend runs fp32 on the CPU only")
        if backend == "onnxruntime" and not onnxruntime_available():
            raise ValueError("backend='onnxruntime' needs the onnxruntime package (pip install onnxruntime)")
        return backend

    def plan(self, shape: Sequence[int]) -> WindowPlan:
        """Window plan for a volume of ``shape`` (already padded to at least ``roi_size`` in the default mode)."""
        if self.fast:
            return fitted_plan(shape, self.max_window, self.margin)
        return grid_plan(shape, self.roi_size, self.overlap)

    def batch_size(self, plan: WindowPlan) -> int:
        """Windows per forward pass: ``sw_batch_size``, capped in fast mode so that a batch holds at
        most ``FAST_BATCH_VOXELS`` voxels (but always at least one window)."""
        if not self.fast:
            return self.sw_batch_size
        return max(1, min(self.sw_batch_size, FAST_BATCH_VOXELS // math.prod(plan.window)))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network on a batch of windows. A non-finite output for a finite input discards the
        accelerated form (one warning) and reruns the batch on the plain network; from the plain
        network it is an error."""
        y = self._run(x)
        if finite_where_input_is(y, x):
            return y
        if self.form_name() is not None:
            logger.warning("%s discarded, the plain network runs instead: it gave NaN or infinite values for a "
                           "finite input window %s", self.form_name(), tuple(x.shape))
            self._use_plain()
            y = self._run(x)
            if finite_where_input_is(y, x):
                return y
        raise FloatingPointError(f"{type(self._reference).__name__} gave NaN or infinite values for a finite input "
                                 f"window {tuple(x.shape)} (plain network, fp32): check its weights")

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self._native is not None:
            return self._native(x)
        if self._onnx is not None:
            return self._onnx(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        dtype = PRECISIONS[self.precision]
        ctx = torch.autocast(self.device.type, dtype=dtype) if dtype is not None else nullcontext()
        with ctx:
            return self.network(x)

    def _pad_to_roi(self, array: np.ndarray, fill: float) -> tuple[np.ndarray, tuple[slice, ...]]:
        """Pad axes shorter than the window symmetrically (as MONAI does); the crop that undoes it."""
        if self.fast or all(s >= r for s, r in zip(array.shape, self.roi_size)):
            return array, tuple(slice(None) for _ in array.shape)
        extra = [max(r - s, 0) for s, r in zip(array.shape, self.roi_size)]
        pads = [(e // 2, e - e // 2) for e in extra]
        padded = np.pad(array, pads, mode="constant", constant_values=fill)
        return padded, tuple(slice(lo, lo + s) for (lo, _), s in zip(pads, array.shape))

    @torch.inference_mode()
    def predict_array(self, array: np.ndarray, *, params: LinearScale | None = None) -> np.ndarray:
        """3D array in input units -> 3D float32 array in the same units.

        ``params``: the normalisation (default: the normaliser fitted on ``array``).
        """
        if array.ndim != 3:
            raise ValueError(f"expected a 3D array, got shape {array.shape}")
        if params is None:
            params = self.normaliser.fit(array) if self.normaliser is not None else LinearScale(0.0, 1.0)
        padded, crop = self._pad_to_roi(array, params.offset)
        plan = self.plan(padded.shape)
        y = sliding_window(
            padded, self._forward, plan, prepare=params.apply,
            batch_size=self.batch_size(plan), mode=self.mode, device=self.device,
        )
        y = y[crop]
        y *= params.scale
        y += params.offset
        return y

    def predict(self, volume: Volume) -> Volume:
        """Predict on a :class:`Volume`; the result has the input's grid, affine and units
        (unless the normaliser's ``output_volume`` converts them)."""
        fit_volume = getattr(self.normaliser, "fit_volume", None)
        params = fit_volume(volume) if fit_volume is not None else None
        result = volume.with_array(self.predict_array(volume.array, params=params), dtype=np.dtype(np.float32))
        output_volume = getattr(self.normaliser, "output_volume", None)
        return output_volume(result) if output_volume is not None else result
