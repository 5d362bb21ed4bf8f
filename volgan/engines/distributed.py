"""Gradient averaging across processes for GAN training without DistributedDataParallel.

A WGAN-GP critic step takes a double backward (the gradient penalty), which
DistributedDataParallel's reducer does not support; averaging the ``.grad`` tensors after
``backward`` is equivalent for plain data parallelism and works for both networks.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def average_gradients(module: nn.Module) -> None:
    """All-reduce and average every parameter gradient of ``module`` over the process group."""
    n = world_size()
    if n == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= n
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_parameters(module: nn.Module, src: int = 0) -> None:
    """Make every rank start from rank ``src``'s weights and buffers."""
    if world_size() == 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=src)
