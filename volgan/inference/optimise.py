"""Inference-time rewrites of a generator that leave its function unchanged (up to rounding)."""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from volgan.hardware import cpu_has_fast_bf16

logger = logging.getLogger(__name__)


CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class _Tracer(torch.fx.Tracer):
    """``torch.fx``'s tracer, also keeping whole the modules marked ``traced_as_leaf`` (those that
    run their own kernels, e.g. :class:`~volgan.inference.cpu.buffered_dense.BufferedDenseBlock`)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return getattr(m, "traced_as_leaf", False) or super().is_leaf_module(m, module_qualified_name)


def traced_copy(network: nn.Module, purpose: str) -> torch.fx.GraphModule | None:
    """A ``torch.fx`` trace of a copy of ``network`` in eval mode (a trace shares submodules with
    what it traces, and rewrites change them); None, with a warning naming ``purpose``, when it
    cannot be traced: tracing limits are network-specific and every rewrite is an optimisation."""
    if isinstance(network, torch.fx.GraphModule):
        return copy.deepcopy(network)
    try:
        root = copy.deepcopy(network).eval()
        return torch.fx.GraphModule(root, _Tracer().trace(root), type(root).__name__)
    except Exception as err:
        logger.warning("%s skipped (%s: %s)", purpose, type(err).__name__, err)
        return None


def rewritten(graph: torch.fx.GraphModule, network: nn.Module, changes: int) -> nn.Module:
    """``graph`` checked and recompiled after ``changes`` rewrites; ``network`` if there were none."""
    if not changes:
        return network
    graph.graph.lint()
    graph.delete_all_unused_submodules()
    graph.recompile()
    return graph


def fold_batchnorm(network: nn.Module) -> nn.Module:
    """Fold every BatchNorm whose input is a convolution (plain or transposed) used only by it
    into that convolution's weights and bias (eval-mode statistics).

    Uses ``torch.fx``; a network that cannot be traced, or has nothing to fold, is returned as
    is. The input network is not modified.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if not any(isinstance(m, BATCHNORMS) for m in network.modules()):
        return network
    graph = traced_copy(network, "BatchNorm folding")
    if graph is None:
        return network
    modules = dict(graph.named_modules())
    folded = 0
    for node in list(graph.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], BATCHNORMS):
            continue
        source = node.args[0]
        if not (isinstance(source, torch.fx.Node) and source.op == "call_module" and len(source.users) == 1
                and isinstance(modules[source.target], CONVOLUTIONS)):
            continue
        conv, bn = modules[source.target], modules[node.target]
        if not bn.track_running_stats or bn.running_mean is None:
            continue
        fused = fuse_conv_bn_eval(conv, bn, transpose=conv.transposed)
        graph.set_submodule(source.target, fused)
        node.replace_all_uses_with(source)
        graph.graph.erase_node(node)
        folded += 1
    return rewritten(graph, network, folded)


def fast_precision(device: torch.device) -> str:
    """The reduced precision worth using on ``device``: bf16 on CUDA (fp16 before Ampere) and on CPUs
    with native bf16; fp32 elsewhere (emulated bf16 is far slower than fp32)."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"
