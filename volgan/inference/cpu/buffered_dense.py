"""mDCSRN's dense blocks without concatenation copies, for fast mode on the CPU.

A dense block concatenates its input and every unit's new feature maps, so ``torch.cat`` copies
the whole running concatenation once per unit. :class:`BufferedDenseBlock` computes the same function without: its input
and each unit's output are kept as parts (:mod:`volgan.inference.cpu.dense_parts`), each unit's
BatchNorm + ELU reads the parts it needs in one C pass, its convolution
(:class:`~volgan.inference.cpu.paired_depth.PairedDepthConv3d`, two output depths at a time for
narrow layers) adds its output as a new part as computed, and the block's output buffer is
written once, from all parts.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from volgan.inference.cpu.batchnorm import is_eval_batchnorm
from volgan.inference.cpu.dense_parts import Part, affine_elu_parts, gather_parts
from volgan.inference.cpu.norm_elu import AffineELU
from volgan.inference.cpu.paired_depth import PairedDepthConv3d
from volgan.inference.cpu.winograd import is_plain_3x3x3
from volgan.networks.mdcsrn import DenseBlock, DenseUnit


def _supported(module: nn.Module) -> bool:
    return type(module) is DenseBlock and all(
        isinstance(u, DenseUnit) and type(u.act) is nn.ELU and is_eval_batchnorm(u.norm) and is_plain_3x3x3(u.conv)
        for u in module.units)


class BufferedDenseBlock(nn.Module):
    """A :class:`~volgan.networks.mdcsrn.DenseBlock` (eval mode) computed from parts in ``dtype``, its
    output written once."""

    traced_as_leaf = True  # graph rewrites (volgan.inference.optimise.traced_copy) keep it whole

    def __init__(self, block: DenseBlock, dtype: torch.dtype):
        super().__init__()
        self.dtype, self.out_channels = dtype, block.out_channels
        self.norms = nn.ModuleList(AffineELU(u.norm, u.act.alpha) for u in block.units)
        self.convs = nn.ModuleList(PairedDepthConv3d(u.conv, dtype) for u in block.units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [Part(x.to(self.dtype).contiguous(memory_format=torch.channels_last_3d))]
        for norm, conv in zip(self.norms, self.convs):
            parts.append(conv.part(affine_elu_parts(norm, parts)))
        return gather_parts(parts)


def buffer_dense_blocks(network: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of ``network`` whose mDCSRN dense blocks are :class:`BufferedDenseBlock` in ``dtype``;
    ``network`` itself when it has none (blocks already flattened by a ``torch.fx`` rewrite are not
    found)."""
    names = [name for name, module in network.named_modules() if _supported(module)]
    if not names:
        return network
    network = copy.deepcopy(network)
    for name in names:
        network.set_submodule(name, BufferedDenseBlock(network.get_submodule(name), dtype))
    return network
