"""Whole-volume sliding-window inference that returns results on the input grid, in input units."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from torch import nn

from volgan.data.normalise import PercentileScaler
from volgan.io.volume import Volume

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_generator_weights(network: nn.Module, checkpoint: str | os.PathLike, key: str = "generator") -> nn.Module:
    """Load a state dict (plain, or under ``key`` in a training checkpoint) with ``weights_only=True``."""
    state = torch.load(os.fspath(checkpoint), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and key in state and isinstance(state[key], dict):
        state = state[key]
    network.load_state_dict(state)
    return network


class Predictor:
    """Run a generator over a whole volume of any size with MONAI's SlidingWindowInferer.

    The input is normalised (by default: percentile scaling fitted on the input), cut into
    overlapping windows blended with Gaussian weights, and the output is mapped back to the
    input's units and written on the input's grid (same shape and affine).

    Args:
        network: the generator (any fully convolutional ``(B, 1, D, H, W)`` -> same shape net).
        checkpoint: optional weights file, loaded with ``weights_only=True``.
        roi_size: window size in voxels.
        overlap: window overlap fraction.
        sw_batch_size: windows per forward pass.
        mode: blending, ``"gaussian"`` (default) or ``"constant"``.
        device: where the network runs (default: CUDA if available, else CPU).
        stitch_on_cpu: keep the full-size output buffer on the CPU and move only windows to the
            device; ``"auto"`` does so on CUDA for volumes above ``stitch_threshold`` voxels.
        precision: ``"fp32"`` (default, for quantitative work), ``"bf16"`` or ``"fp16"``
            autocast (the fast mode).
        channels_last: run in ``torch.channels_last_3d`` memory format.
        normaliser: object with ``fit(array) -> LinearScale``; ``None`` to feed raw values.

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
        stitch_on_cpu: bool | str = "auto",
        stitch_threshold: int = 256**3,
        precision: str = "fp32",
        channels_last: bool = False,
        normaliser: PercentileScaler | None = None,
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if checkpoint is not None:
            load_generator_weights(network, checkpoint)
        self.network = network.to(self.device).eval()
        self.channels_last = channels_last
        if channels_last:
            self.network = self.network.to(memory_format=torch.channels_last_3d)
        self.precision = precision
        self.roi_size = tuple(int(s) for s in roi_size)
        self.overlap, self.sw_batch_size, self.mode = float(overlap), int(sw_batch_size), mode
        self.stitch_on_cpu, self.stitch_threshold = stitch_on_cpu, int(stitch_threshold)
        self.normaliser = PercentileScaler() if normaliser is None else normaliser

    def _stitch_device(self, n_voxels: int) -> torch.device:
        if self.stitch_on_cpu == "auto":
            on_cpu = self.device.type != "cpu" and n_voxels > self.stitch_threshold
        else:
            on_cpu = bool(self.stitch_on_cpu)
        return torch.device("cpu") if on_cpu else self.device

    def _forward(self, window: torch.Tensor) -> torch.Tensor:
        x = window.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        dtype = PRECISIONS[self.precision]
        ctx = torch.autocast(self.device.type, dtype=dtype) if dtype is not None else nullcontext()
        with ctx:
            y = self.network(x)
        return y.float().contiguous()

    @torch.inference_mode()
    def predict_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, X, Y, Z)`` normalised input -> normalised output of the same shape."""
        inferer = SlidingWindowInferer(
            roi_size=self.roi_size,
            sw_batch_size=self.sw_batch_size,
            overlap=self.overlap,
            mode=self.mode,
            sw_device=self.device,
            device=self._stitch_device(int(np.prod(x.shape[2:]))),
        )
        return inferer(x, self._forward)

    def predict_array(self, array: np.ndarray) -> np.ndarray:
        """3D array in input units -> 3D float32 array in the same units."""
        if array.ndim != 3:
            raise ValueError(f"expected a 3D array, got shape {array.shape}")
        params = self.normaliser.fit(array) if self.normaliser is not None else None
        x = np.asarray(array, dtype=np.float32)
        x = params.apply(x) if params is not None else x
        y = self.predict_tensor(torch.from_numpy(np.ascontiguousarray(x))[None, None])[0, 0].cpu().numpy()
        y = params.invert(y) if params is not None else y
        return y.astype(np.float32, copy=False)

    def predict(self, volume: Volume) -> Volume:
        """Predict on a :class:`Volume`; the result has the input's grid, affine and units."""
        return volume.with_array(self.predict_array(volume.array), dtype=np.dtype(np.float32))
