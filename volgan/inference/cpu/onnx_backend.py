"""Run a generator with ONNX Runtime on the CPU (faster than PyTorch's fp32 3D convolutions here).

The network is exported (in memory, by tracing, with a dynamic batch axis) once per window shape, so
shape-dependent Python code in a network (e.g. padding to a multiple of its stride) is traced for
the shape it runs on; sliding-window inference uses one shape. Tracing runs the network once in
PyTorch; for a network whose code depends on the depth only (``plane_dynamic=True``, e.g. the
depth-major rewrite) it runs on an 8x8 plane with the height and width left dynamic, which cut the
export of a 104x120x104 window from 40 s to a few seconds. Numerics stay fp32 (differences from
PyTorch are at rounding level).
"""

from __future__ import annotations

import importlib.util
import io
import logging
import warnings

import torch
from torch import nn

logger = logging.getLogger(__name__)


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


class OnnxRuntimeForward:
    """Callable ``(B, C, D, H, W)`` CPU tensor -> output tensor, running ``network`` in ONNX Runtime."""

    def __init__(self, network: nn.Module, threads: int | None = None, plane_dynamic: bool = False):
        self.network, self.threads, self.plane_dynamic = network, threads, bool(plane_dynamic)
        self.sessions: dict[tuple[int, ...], object] = {}

    def _export(self, example: torch.Tensor):
        import onnxruntime as ort

        buffer = io.BytesIO()
        axes = {0: "batch"}
        if self.plane_dynamic:
            example = example[..., : min(example.shape[-2], 8), : min(example.shape[-1], 8)]
            axes = {0: "batch", 3: "height", 4: "width"}
        # shape-dependent Python in a network is traced for this window shape only, on purpose;
        # the exporter's tracer and shape-inference warnings say just that
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(self.network.float().cpu(), (example.float().cpu(),), buffer, input_names=["image"],
                              output_names=["pred"], dynamic_axes={"image": axes, "pred": axes}, dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # memory patterns slow later runs of a large window and save nothing once the arena has grown
        options.enable_mem_pattern = False
        logger.info("network exported to ONNX Runtime (%d threads)", options.intra_op_num_threads)
        return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape[1:3] if self.plane_dynamic else x.shape[1:])
        if shape not in self.sessions:
            self.sessions[shape] = self._export(x[:1])
        (y,) = self.sessions[shape].run(["pred"], {"image": x.detach().float().contiguous().cpu().numpy()})
        return torch.from_numpy(y)
