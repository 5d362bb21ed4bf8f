"""Convolutions fused with the element-wise layers after them, for fast mode on the CPU.

oneDNN applies an activation, or a skip addition followed by a ReLU, to a convolution's output
while it is still in registers ("post-ops"), so those layers cost no pass over memory of their
own. PyTorch exposes this as ``torch.ops.mkldnn._convolution_pointwise`` (what Inductor emits
for the CPU). :func:`fuse_pointwise` rewrites a traced network so that every plain 3D
convolution runs through it, in a fixed precision per layer (weights cast once, not per call as
under autocast), taking along:

* the LeakyReLU or ReLU that is the convolution's only user;
* a skip addition that is its only user (binary post-op), and the ReLU after that addition,
  when the skip comes from another convolution (a skip of the float32 input is added apart, in
  float32, as under autocast).

:func:`fold_batchnorm_after_add` first removes BatchNorms that follow a skip addition (RED-WGAN's
decoder: ``BN(conv(y) + e)``), which ordinary folding cannot reach: the BatchNorm's scale goes
into that convolution and into ``e``'s producer, and out again in ``e``'s other consumers.
"""

from __future__ import annotations

import collections
import operator

import torch
import torch.nn.functional as F
from torch import nn

from volgan.inference.cpu.batchnorm import batchnorm_affine, is_eval_batchnorm
from volgan.inference.optimise import rewritten, traced_copy


UNARY = {nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu"}
ADDITIONS = (operator.add, torch.add)
CONVOLUTIONS = (torch.conv3d, torch.nn.functional.conv3d, torch.conv_transpose3d, torch.nn.functional.conv_transpose3d)


def fused_pointwise_available(dtype: torch.dtype = torch.float32) -> bool:
    """True if this PyTorch build has oneDNN's fused CPU convolutions and this CPU runs them in
    ``dtype``: oneDNN refuses bf16 without AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT, where PyTorch's
    own (emulated) bf16 convolutions still run."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")):
        return False
    return dtype != torch.bfloat16 or bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class PointwiseConv3d(nn.Module):
    """A 3D convolution in ``dtype`` through oneDNN, with an optional skip addition and activation
    fused into it; channels-last 3D in and out.

    Args:
        conv: the convolution (zero padding, numeric ``padding``).
        dtype: the precision it runs in (its input is cast to it; the output is in it).
        unary: ``"none"``, ``"relu"`` or ``"leaky_relu"``, applied last.
        slope: LeakyReLU's negative slope.
        add: ``forward(x, other)`` adds ``other`` before the activation (which must then be
            ``"none"`` or ``"relu"``: what oneDNN supports after an addition).
    """

    def __init__(self, conv: nn.Conv3d, dtype: torch.dtype, unary: str = "none", slope: float = 0.0, add: bool = False):
        super().__init__()
        if add and unary not in ("none", "relu"):
            raise ValueError(f"after a fused addition only 'none' or 'relu' is supported, got {unary!r}")
        self.dtype, self.unary, self.add = dtype, unary, bool(add)
        self.scalars = [float(slope)] if unary == "leaky_relu" else []
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), int(conv.groups)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        weight = conv.weight.detach().to(dtype).contiguous(memory_format=torch.channels_last_3d)
        # the binary form needs the bias in the input's type; the unary one keeps it in fp32
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels, device=weight.device)
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias.to(dtype) if add else bias.float())

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        x = channels_last_3d(x.to(self.dtype))
        args = (self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups)
        if not self.add:
            return torch.ops.mkldnn._convolution_pointwise(x, *args, self.unary, self.scalars, None)
        other = channels_last_3d(other.to(self.dtype))
        unary = None if self.unary == "none" else self.unary
        return torch.ops.mkldnn._convolution_pointwise.binary(x, other, *args, "add", 1.0, unary, [], None)

    def accumulate(self, x: torch.Tensor, into: torch.Tensor) -> torch.Tensor:
        """``into += self(x)`` in place (oneDNN's sum post-op: no temporary of the output's size);
        ``into``: channels-last, in this layer's precision. Only for a layer without an activation."""
        if self.unary != "none":
            raise ValueError(f"accumulate applies no activation; this layer has {self.unary!r}")
        if not (into.dtype == self.dtype and into.is_contiguous(memory_format=torch.channels_last_3d)):
            raise ValueError(f"accumulate needs a channels-last {self.dtype} tensor to add into")
        x = channels_last_3d(x.to(self.dtype))
        args = (self.weight, self.bias.to(self.dtype), self.padding, self.stride, self.dilation, self.groups)
        inplace = getattr(torch.ops.mkldnn, "_convolution_pointwise_", None)
        if inplace is None:  # older PyTorch: a temporary
            return into.add_(torch.ops.mkldnn._convolution_pointwise(x, *args, "none", [], None))
        return inplace.binary(into, x, *args, "add", 1.0, None, [], None)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, dtype={self.dtype}, unary={self.unary}"
                + (", add" if self.add else ""))


class PlainConv3d:
    """:class:`PointwiseConv3d`'s interface (float32, no addition operand) without oneDNN's fused
    convolutions: ``F.conv3d``, then the activation or the addition in place."""

    def __init__(self, conv: nn.Conv3d, unary: str = "none", slope: float = 0.0):
        self.weight = conv.weight.detach().float().contiguous(memory_format=torch.channels_last_3d)
        self.bias = None if conv.bias is None else conv.bias.detach().float()
        self.geometry = (conv.stride, conv.padding, conv.dilation, conv.groups)
        self.unary, self.slope = unary, slope

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv3d(x, self.weight, self.bias, *self.geometry)
        if self.unary == "leaky_relu":
            return F.leaky_relu_(y, self.slope)
        return y.relu_() if self.unary == "relu" else y

    def accumulate(self, x: torch.Tensor, into: torch.Tensor) -> torch.Tensor:
        return into.add_(F.conv3d(x, self.weight, self.bias, *self.geometry))


def fp32_convolution(conv: nn.Conv3d, unary: str = "none", slope: float = 0.0, *,
                     fused: bool | None = None) -> PointwiseConv3d | PlainConv3d:
    """``conv`` and the activation after it in float32 on the CPU, for volgan's native forms: one
    oneDNN fused call (:class:`PointwiseConv3d`) where this PyTorch has them (``fused=None``) or
    when ``fused``, else :class:`PlainConv3d`.

    Calling oneDNN directly also bypasses PyTorch's ``F.conv3d`` dispatch, which runs a batch-1
    float32 input with ``N * C * D * H <= 20480`` and a kernel of at most 3 (a one-channel 64^3 or
    104x120x104 window; the PET U-Net's decoder on a 64^3 window) in its reference convolution,
    far slower than oneDNN (``benchmarks/README.md``)."""
    conv = conv.float()
    if fused is None:
        fused = fused_pointwise_available(torch.float32)
    if fused:
        return PointwiseConv3d(conv, torch.float32, unary, slope)
    return PlainConv3d(conv, unary, slope)


def channels_last_3d(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the channels-last 3D memory format, with strides that say so when it has one channel.

    A one-channel tensor is contiguous in both formats, and PyTorch takes plain strides for the
    default one; oneDNN then returned a fused convolution's output in the default format, which
    the next layer had to copy into channels-last. The strides of a size-1 axis address nothing,
    so the view changes no data."""
    x = x.contiguous(memory_format=torch.channels_last_3d)
    if x.dim() == 5 and x.shape[1] == 1 and x.stride(1) != 1:
        x = x.as_strided(x.shape, (x.stride(0), 1, *x.stride()[2:]))
    return x


def _fusable(module: nn.Module) -> bool:
    return (type(module) is nn.Conv3d and module.padding_mode == "zeros" and not isinstance(module.padding, str)
            and module.weight.device.type == "cpu")


def _unary_of(node: torch.fx.Node, modules: dict[str, nn.Module]) -> tuple[str, float] | None:
    """``(attr, slope)`` when ``node`` is a ReLU or LeakyReLU module call, else None."""
    if node.op != "call_module":
        return None
    module = modules[node.target]
    kind = UNARY.get(type(module))
    if kind is None:
        return None
    return kind, float(getattr(module, "negative_slope", 0.0))


def _other_operand(add: torch.fx.Node, node: torch.fx.Node) -> torch.fx.Node:
    return add.args[1] if add.args[0] is node else add.args[0]


def _sole_user(node: torch.fx.Node) -> torch.fx.Node | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


def _after_a_convolution(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    """True if ``node`` depends on a convolution (so in reduced precision it is in that precision,
    not in the input's float32)."""
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        weight = getattr(modules.get(n.target), "weight", None) if n.op == "call_module" else None
        if (isinstance(weight, torch.Tensor) and weight.ndim == 5) or n.target in CONVOLUTIONS:
            return True
        todo.extend(n.all_input_nodes)
    return False


def fold_batchnorm_after_add(network: nn.Module) -> nn.Module:
    """A copy of ``network`` without the eval-mode BatchNorms that follow ``conv(y) + e``, where
    ``e = act(conv_e(...))`` with ``act`` a ReLU, LeakyReLU or nothing (positively homogeneous),
    every BatchNorm scale is positive, and ``e``'s other users are convolutions.

    ``BN(conv(y) + e) = s * conv(y) + t + s * e``: ``s`` and ``t`` go into ``conv``; ``s * e`` is
    ``act(s * conv_e(...))``, so ``s`` goes into ``conv_e``'s output channels and ``1 / s`` into
    the input channels of ``e``'s other users. The same function, up to rounding. ``network``
    itself when nothing folds or it cannot be traced.
    """
    if not any(map(is_eval_batchnorm, network.modules())):
        return network  # (no trace needed: each costs a copy of the network)
    graph = traced_copy(network, "BatchNorm folding after additions")
    if graph is None:
        return network
    modules = dict(graph.named_modules())
    folded = 0
    for add in list(graph.graph.nodes):
        if not (add.op == "call_function" and add.target in ADDITIONS and len(add.args) == 2 and not add.kwargs):
            continue
        bn_node = _sole_user(add)
        if bn_node is None or bn_node.op != "call_module" or not is_eval_batchnorm(modules[bn_node.target]):
            continue
        parts = [a for a in add.args if isinstance(a, torch.fx.Node)]
        plan = None
        for conv_node, skip in (parts, parts[::-1]) if len(parts) == 2 else ():
            if conv_node.op == "call_module" and type(modules[conv_node.target]) is nn.Conv3d and len(conv_node.users) == 1:
                plan = (conv_node, skip)
                break
        if plan is None:
            continue
        conv_node, skip = plan
        producer = skip.args[0] if _unary_of(skip, modules) else skip
        if not (isinstance(producer, torch.fx.Node) and producer.op == "call_module"
                and type(modules[producer.target]) is nn.Conv3d):
            continue
        if producer is not skip and len(producer.users) != 1:
            continue
        conv, source = modules[conv_node.target], modules[producer.target]
        if conv.bias is None or source.bias is None:
            continue
        consumers = [u for u in skip.users if u is not add]
        if not all(u.op == "call_module" and type(modules[u.target]) is nn.Conv3d and u.args[0] is skip
                   and len(u.args) == 1 for u in consumers):
            continue
        scale, shift = batchnorm_affine(modules[bn_node.target])
        if not bool((scale > 0).all()):
            continue
        with torch.no_grad():
            s = scale.to(conv.weight)
            conv.weight.mul_(s.view(-1, 1, 1, 1, 1))
            conv.bias.mul_(s).add_(shift.to(conv.bias))
            source.weight.mul_(s.view(-1, 1, 1, 1, 1))
            source.bias.mul_(s)
            for user in consumers:
                modules[user.target].weight.div_(s.view(1, -1, 1, 1, 1))
        bn_node.replace_all_uses_with(add)
        graph.graph.erase_node(bn_node)
        folded += 1
    return rewritten(graph, network, folded)


def fuse_pointwise(network: nn.Module, dtype: torch.dtype, fp32_layers: tuple[str, ...] | list[str] = ()) -> nn.Module:
    """A copy of ``network`` whose plain 3D convolutions followed by an activation or skip
    addition run as :class:`PointwiseConv3d` in ``dtype``, with that layer fused in (see the
    module docstring), and those named in ``fp32_layers`` in float32 (fused or not); ``network``
    itself when it cannot be traced or has no such convolution. Run it under the same autocast
    as before for the other layers."""
    graph = traced_copy(network, "convolution fusion")
    if graph is None:
        return network
    modules = dict(graph.named_modules())
    calls = collections.Counter(n.target for n in graph.graph.nodes if n.op == "call_module")
    fused = 0
    for node in list(graph.graph.nodes):
        if (node.op != "call_module" or not _fusable(modules[node.target]) or len(node.args) != 1 or node.kwargs
                or calls[node.target] != 1):  # a module called twice shares its weights: left as is
            continue
        layer_dtype = torch.float32 if node.target in fp32_layers else dtype
        user, unary, slope, other, last = _sole_user(node), "none", 0.0, None, node
        if user is not None and (activation := _unary_of(user, modules)):
            (unary, slope), last = activation, user
        elif (user is not None and user.op == "call_function" and user.target in ADDITIONS and len(user.args) == 2
              and not user.kwargs and all(isinstance(a, torch.fx.Node) for a in user.args) and user.args[0] is not user.args[1]
              and (layer_dtype == torch.float32 or _after_a_convolution(_other_operand(user, node), modules))):
            # (an addition of the float32 input stays apart: under autocast it is in float32, and
            # the fused one would round the sum, often the network's output, to ``dtype``)
            other, last = _other_operand(user, node), user
            after = _sole_user(user)
            if after is not None and (_unary_of(after, modules) or ("",))[0] == "relu":
                unary, last = "relu", after
        if last is node and node.target not in fp32_layers:
            continue  # nothing to fuse: under autocast it was as fast (mDCSRN's 22 convolutions)
        module = PointwiseConv3d(modules[node.target], layer_dtype, unary, slope, add=other is not None)
        graph.add_submodule(node.target, module)
        with graph.graph.inserting_before(last):
            args = (node.args[0],) if other is None else (node.args[0], other)
            replacement = graph.graph.call_module(node.target, args)
        last.replace_all_uses_with(replacement)
        chain = [node] + ([user] if last is not node else []) + ([last] if last not in (node, user) else [])
        for dead in reversed(chain):
            graph.graph.erase_node(dead)
        fused += 1
    return rewritten(graph, network, fused)
