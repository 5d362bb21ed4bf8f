"""A 1x1x1 convolution of a channel concatenation, computed without the concatenation.

mDCSRN's reconstruction layer is a 1x1x1 convolution of the concatenation of its five levels
(the first convolution's and every compressor's maps). A 1x1x1 convolution is linear in its input
channels, so it equals the sum of one 1x1x1 convolution per concatenated part, each with its
slice of the weights. The sum is kept in float32 (not rounded to bf16), and the concatenated
buffer (every part's maps of every window voxel) is never allocated.

:func:`split_concat_pointwise` rewrites every plain 1x1x1 convolution whose input is a
``torch.cat`` along channels used by nothing else into :class:`ConcatPointwiseConv3d`.
"""

from __future__ import annotations

import collections

import torch
from torch import nn

from volgan.inference.cpu.fused_pointwise import PointwiseConv3d
from volgan.inference.optimise import rewritten, traced_copy


def _is_plain_pointwise(module: nn.Module) -> bool:
    return (type(module) is nn.Conv3d and module.kernel_size == (1, 1, 1) and module.stride == (1, 1, 1)
            and module.padding == (0, 0, 0) and module.groups == 1)


def _channel_cat_parts(node: torch.fx.Node) -> list[torch.fx.Node] | None:
    """The tensors ``node`` concatenates along dimension 1, or None if it is not such a cat."""
    if node.op != "call_function" or node.target is not torch.cat or not node.args:
        return None
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    parts = node.args[0]
    if dim != 1 or not isinstance(parts, (list, tuple)) or not all(isinstance(p, torch.fx.Node) for p in parts):
        return None
    return list(parts)


class ConcatPointwiseConv3d(nn.Module):
    """``conv(torch.cat(parts, 1))`` for a 1x1x1 ``conv``, as the float32 sum of one 1x1x1
    convolution per part in ``dtype`` (:class:`~volgan.inference.cpu.fused_pointwise.PointwiseConv3d`);
    the output is float32."""

    traced_as_leaf = True  # its parts are sized on the first call: later graph rewrites keep it whole

    def __init__(self, conv: nn.Conv3d, dtype: torch.dtype):
        super().__init__()
        if not _is_plain_pointwise(conv):
            raise ValueError(f"ConcatPointwiseConv3d needs a 1x1x1 convolution with stride 1, got {conv}")
        self.conv, self.dtype = conv, dtype
        self._parts: dict[tuple[int, ...], list[PointwiseConv3d]] = {}

    def _split(self, channels: tuple[int, ...]) -> list[PointwiseConv3d]:
        if sum(channels) != self.conv.in_channels:
            raise ValueError(f"the parts have {channels} channels, {sum(channels)} in all; "
                             f"the convolution takes {self.conv.in_channels}")
        parts, start = [], 0
        for i, c in enumerate(channels):
            part = nn.Conv3d(c, self.conv.out_channels, 1, bias=i == 0 and self.conv.bias is not None,
                             device=self.conv.weight.device, dtype=self.conv.weight.dtype)
            with torch.no_grad():
                part.weight.copy_(self.conv.weight[:, start:start + c])
                if part.bias is not None:
                    part.bias.copy_(self.conv.bias)
            parts.append(PointwiseConv3d(part, self.dtype))
            start += c
        return parts

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        channels = tuple(int(x.shape[1]) for x in inputs)
        if channels not in self._parts:
            self._parts[channels] = self._split(channels)
        out = None
        for part, x in zip(self._parts[channels], inputs):
            y = part(x)
            out = y.float() if out is None else out.add_(y)
        return out

    def extra_repr(self) -> str:
        return f"{self.conv.in_channels}, {self.conv.out_channels}, dtype={self.dtype}"


def split_concat_pointwise(network: nn.Module, dtype: torch.dtype, keep: tuple[str, ...] | list[str] = ()) -> nn.Module:
    """A copy of ``network`` whose plain 1x1x1 convolutions of a channel concatenation (used only
    by them, each convolution called once, not named in ``keep``) run as
    :class:`ConcatPointwiseConv3d` in ``dtype``; ``network`` itself when it cannot be traced or has
    none."""
    graph = traced_copy(network, "1x1x1 convolution of a concatenation")
    if graph is None:
        return network
    modules = dict(graph.named_modules())
    calls = collections.Counter(n.target for n in graph.graph.nodes if n.op == "call_module")
    changed = 0
    for node in list(graph.graph.nodes):
        if (node.op != "call_module" or not _is_plain_pointwise(modules[node.target]) or len(node.args) != 1
                or node.kwargs or calls[node.target] != 1 or node.target in keep
                or not isinstance(node.args[0], torch.fx.Node)):
            continue
        cat = node.args[0]
        parts = _channel_cat_parts(cat)
        if parts is None or len(cat.users) != 1:
            continue
        graph.add_submodule(node.target, ConcatPointwiseConv3d(modules[node.target], dtype))
        with graph.graph.inserting_before(node):
            replacement = graph.graph.call_module(node.target, tuple(parts))
        node.replace_all_uses_with(replacement)
        graph.graph.erase_node(node)
        graph.graph.erase_node(cat)
        changed += 1
    return rewritten(graph, network, changed)
