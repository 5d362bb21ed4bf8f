"""Whole-volume sliding-window inference that returns results on the input grid, in input units."""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from volgan.data.modality_normalise import SuvScaler
from volgan.data.normalise import LinearScale, PercentileScaler
from volgan.inference.forms import BACKENDS, PRECISIONS, FormReport, plain_forward, torch_forward
from volgan.inference.forward_guard import Verdict, check_form, finite_where_input_is
from volgan.inference.optimise import cpu_has_fast_bf16, fast_precision
from volgan.inference.stitch import sliding_window
from volgan.inference.tiling import WindowPlan, fitted_plan, grid_plan
from volgan.io.volume import Volume

logger = logging.getLogger(__name__)

# fast mode's large windows are batched only up to this many voxels per forward pass (two 64^3
# windows): activations scale with it
FAST_BATCH_VOXELS = 2 * 64**3


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
    (same function, fewer passes).

    On the CPU the network runs in the fastest form the CPU accelerator builds for it
    (:func:`volgan.inference.cpu.build_forward`: native forms of volgan's generators, depth
    Winograd, fused oneDNN convolutions); on other devices, and for ``backend="torch"`` with its
    rewrites, in PyTorch. ``Predictor.report`` says which form runs.

    Two speeds:

    * default (``fast=False``): MONAI's window grid (``roi_size``, ``overlap``) and blending, in
      fp32; results match ``monai.inferers.SlidingWindowInferer`` on the same network.
    * ``fast=True``: windows as large as ``max_window`` overlapping by ``margin`` voxels (far
      fewer redundant voxels), channels-last 3D for PyTorch, and reduced precision where the
      hardware has it (bf16 on CUDA and on CPUs with native bf16; fp32 on CPUs without, where
      emulated bf16 is slower).
      Outputs differ slightly near window seams; see the README for measured differences. Use
      fp32 default mode for quantitative work.

    Every form other than the plain network (native, rewritten layers, reduced
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
            fp32 for mDCSRN and RED-WGAN when the C kernels build, else PyTorch), ``"native"``
            (CPU only) or ``"torch"``.
        winograd: on the CPU in fp32, run mDCSRN's and RED-WGAN's 3x3x3 convolutions as native
            depth Winograd (same function up to fp32 rounding); ``False`` with ``backend="auto"``
            runs them in PyTorch.
        fp32_share: in bf16/fp16, the cheapest convolutions, up to this share of the network's
            FLOPs, run in fp32 (:mod:`volgan.inference.mixed_precision`: the narrow layers next
            to the image carry most of the rounding error); ``Predictor.fp32_layers`` names
            them; 0 (default): every layer in
            reduced precision.
        normaliser: object with ``fit(array) -> LinearScale`` (default: ``PercentileScaler()``).
            One that needs the volume's metadata (e.g. :class:`~volgan.data.SuvScaler`, whose
            SUV factor comes from DICOM headers) also has ``fit_volume(volume) -> LinearScale``,
            which :meth:`predict` uses instead, and may have ``output_volume(volume) -> Volume``
            to convert predictions (e.g. to SUV).
        edge_margin: voxels of mirrored edge added on every side of the volume before the windows
            and removed after, so that a volume cut through tissue does not meet the windows' zero
            padding at its own border (a network trained on patches cut from inside a head takes
            that cliff for structure); 0 (default): none, MONAI's result.

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
        edge_margin: int = 0,
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
        if int(edge_margin) < 0:
            raise ValueError(f"edge_margin must be >= 0, got {edge_margin}")
        self.edge_margin = int(edge_margin)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if self.device.type == "cpu":
            from volgan.inference.cpu import build_forward  # the CPU accelerator: imported only where it runs

            form, report = build_forward(network, self.device, self.precision, self.fast, backend,
                                         channels_last=channels_last, winograd=winograd, fp32_share=fp32_share)
        elif backend == "native":
            raise ValueError(f"backend={backend!r} runs on the CPU only (this predictor's device: {self.device})")
        else:
            form, report = torch_forward(network, self.device, self.precision,
                                         self.fast if channels_last is None else bool(channels_last), fp32_share)
        self._reference = network
        self._adopt(form, report)
        # every form but the plain network proves itself on a probe first (forward_guard)
        self.guard: Verdict | None = None
        name = self.form_name()
        if name is not None:
            self.guard = check_form(name, self._run, self._reference_on_device(), precision=self.precision,
                                    device=self.device, network=self._reference)
            if not self.guard.passed:
                self._use_plain()

    def _adopt(self, form, report: FormReport) -> None:
        """Run windows through ``form``; the report's facts become this predictor's attributes."""
        self._form, self.report = form, report
        self.backend, self.precision, self.channels_last = report.backend, report.precision, report.channels_last
        self.winograd, self.subpixel, self.fp32_layers = report.winograd, report.subpixel, report.fp32_layers
        self.fused, self.norm_elu = report.fused, report.norm_elu
        self.buffered_dense, self.split_concat = report.buffered_dense, report.split_concat

    @property
    def network(self) -> nn.Module:
        """The module that runs in PyTorch (for a native form: the one it was built from); a
        module assigned here (e.g. a compiled one) runs from then on."""
        return self.report.network

    @network.setter
    def network(self, module: nn.Module) -> None:
        self.report.network = module

    def form_name(self) -> str | None:
        """What runs the network, e.g. ``"PetUNetGenerator as native NativePetUNet in bf16 on cpu"``;
        ``None`` for the plain network (PyTorch, fp32, no rewrite)."""
        return self.report.describe(self._reference, self.device)

    def _reference_on_device(self) -> nn.Module:
        """The caller's network (eval mode) on this predictor's device: itself when it is there."""
        parameter = next(self._reference.parameters(), None)
        if parameter is None or parameter.device == self.device:
            return self._reference
        return copy.deepcopy(self._reference).to(self.device)

    def _use_plain(self) -> None:
        """Run the caller's network as it is, in fp32 on this predictor's device (a copy when it
        lies elsewhere), with no accelerated form."""
        self._adopt(*plain_forward(self._reference_on_device(), self.device))

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
        return self._form(x)

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
        m = self.edge_margin
        if m:
            array = np.pad(array, m, mode="symmetric")
        padded, crop = self._pad_to_roi(array, params.offset)
        plan = self.plan(padded.shape)
        y = sliding_window(
            padded, self._forward, plan, prepare=params.apply,
            batch_size=self.batch_size(plan), mode=self.mode, device=self.device,
        )
        y = y[crop]
        if m:
            y = np.ascontiguousarray(y[m:-m, m:-m, m:-m])
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
