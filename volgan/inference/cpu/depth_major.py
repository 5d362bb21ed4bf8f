"""Rewrite a 3D generator to run on depth-major tensors with Winograd depth convolutions.

Inside the rewritten network every activation is ``(B, D, C, H, W)``: each plane of each window
is one contiguous 2D image, so 3x3x3 convolutions become :class:`WinogradDepthConv3d` (half the
FLOPs, 2D convolution kernels) and 1x1x1 convolutions become 1x1 2D convolutions, with no
transposes between layers. The input is transposed once on the way in and the output once on the
way out, so the rewritten network is a drop-in replacement: ``(B, C, D, H, W)`` in and out.

The rewrite is a ``torch.fx`` graph transformation that accepts only operations whose meaning it
knows in the new layout (convolutions, eval-mode BatchNorm, element-wise activations and
arithmetic, channel concatenation); any other operation (strided or transposed convolutions,
pooling, reshapes, attributes of unknown layout) makes :func:`depth_major_network` return
``None``, and the caller keeps the original network.
"""

from __future__ import annotations

import logging
import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from volgan.inference.optimise import batchnorm_affine
from volgan.inference.cpu.winograd import WinogradDepthConv3d, worth_winograd

logger = logging.getLogger(__name__)

ELEMENTWISE_MODULES = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Identity, nn.Dropout, nn.Dropout3d)
ELEMENTWISE_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg,
    torch.add, torch.sub, torch.mul, torch.relu, torch.sigmoid, torch.tanh, torch.clamp,
    F.relu, F.leaky_relu, F.elu, F.selu, F.gelu, F.silu, F.sigmoid, F.tanh,
}
ELEMENTWISE_METHODS = {"add", "sub", "mul", "relu", "sigmoid", "tanh", "clamp", "__add__", "__sub__", "__mul__"}
CONCATENATE = {torch.cat, torch.concat}


class DepthMajorPointwise(nn.Module):
    """A 1x1x1 convolution on depth-major tensors (a 1x1 2D convolution over all planes)."""

    def __init__(self, conv: nn.Conv3d):
        super().__init__()
        self.register_buffer("weight", conv.weight.detach()[:, :, 0].clone())
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x.flatten(0, 1), self.weight, self.bias).unflatten(0, (-1, x.shape[1]))


class DepthMajorConv3d(nn.Module):
    """Any other 3D convolution that keeps the grid: transposed to channels-first and back."""

    def __init__(self, conv: nn.Conv3d):
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


class DepthMajorBatchNorm(nn.Module):
    """Eval-mode BatchNorm3d as a per-channel affine map on depth-major tensors."""

    def __init__(self, norm: nn.BatchNorm3d):
        super().__init__()
        scale, shift = batchnorm_affine(norm)
        self.register_buffer("scale", scale.reshape(-1, 1, 1).clone())
        self.register_buffer("shift", shift.reshape(-1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, x, self.scale)


def _keeps_grid(conv: nn.Conv3d) -> bool:
    """Output grid equals input grid: stride 1, 'same' zero padding for an odd kernel, no dilation."""
    return (tuple(conv.stride) == (1, 1, 1) and tuple(conv.dilation) == (1, 1, 1) and conv.padding_mode == "zeros"
            and all(k % 2 == 1 and p == k // 2 for k, p in zip(conv.kernel_size, conv.padding)))


def _replacement(module: nn.Module) -> nn.Module | None:
    """The depth-major version of ``module``; ``None`` if it has none."""
    if isinstance(module, nn.Conv3d) and _keeps_grid(module):
        if worth_winograd(module):
            return WinogradDepthConv3d(module)
        if tuple(module.kernel_size) == (1, 1, 1) and module.groups == 1:
            return DepthMajorPointwise(module)
        return DepthMajorConv3d(module)
    if isinstance(module, nn.BatchNorm3d) and not module.training and module.track_running_stats:
        return DepthMajorBatchNorm(module)
    if isinstance(module, ELEMENTWISE_MODULES):
        return module
    return None


def _channel_dim(node: fx.Node) -> int | None:
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
    return dim if isinstance(dim, int) else None


def depth_major_network(network: nn.Module) -> nn.Module | None:
    """``network`` rewritten to compute in depth-major layout (same function, same interface).

    Returns ``None`` when the network uses an operation the rewrite does not know (the reason is
    logged), or cannot be traced.
    """
    try:
        graph_module = fx.symbolic_trace(network.eval())
    except Exception as err:  # tracing limits are network-specific; the rewrite is only an optimisation
        logger.info("depth-major rewrite skipped: not traceable (%s: %s)", type(err).__name__, err)
        return None
    graph = graph_module.graph
    modules = dict(graph_module.named_modules())
    for node in list(graph.nodes):
        problem = None
        if node.op == "placeholder":
            with graph.inserting_after(node):
                transposed = graph.call_method("transpose", (node, 1, 2))
            node.replace_all_uses_with(transposed, delete_user_cb=lambda user: user is not transposed)
        elif node.op == "output":
            with graph.inserting_before(node):
                back = graph.call_method("transpose", (node.args[0], 1, 2))
            node.args = (back,)
        elif node.op == "call_module":
            new = _replacement(modules[node.target])
            if new is None:
                problem = f"module {type(modules[node.target]).__name__}"
            elif new is not modules[node.target]:
                graph_module.add_submodule(node.target, new)
        elif node.op == "call_function" and node.target in CONCATENATE:
            if _channel_dim(node) not in (1, -4):
                problem = f"concatenation along dim {_channel_dim(node)}"
            else:
                node.args, node.kwargs = (node.args[0],), {"dim": 2}
        elif node.op == "call_function" and node.target not in ELEMENTWISE_FUNCTIONS:
            problem = f"function {getattr(node.target, '__name__', node.target)}"
        elif node.op == "call_method" and node.target not in ELEMENTWISE_METHODS:
            problem = f"method {node.target}"
        elif node.op == "get_attr":
            problem = f"attribute {node.target} (layout unknown)"
        if problem is not None:
            logger.info("depth-major rewrite skipped: %s is not supported", problem)
            return None
    graph.lint()
    graph_module.recompile()
    return graph_module
