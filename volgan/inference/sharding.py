"""Splitting a batch over ``torchrun`` processes and merging their results."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Shard:
    """This process's place in the job: ``rank`` of ``world`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @classmethod
    def from_env(cls) -> Shard:
        """Read torchrun's environment (a single process when it is absent)."""
        env = os.environ
        world = int(env.get("WORLD_SIZE", 1))
        return cls(int(env.get("RANK", 0)), world, int(env.get("LOCAL_RANK", 0)), int(env.get("LOCAL_WORLD_SIZE", world)))

    def take(self, items: list) -> list:
        """Round-robin share of ``items`` (sorted inputs, so sizes mix across ranks)."""
        return items[self.rank :: self.world]

    def device(self) -> torch.device:
        """One GPU per local rank when there are GPUs, else the CPU."""
        return torch.device(f"cuda:{self.local_rank}") if torch.cuda.is_available() else torch.device("cpu")

    def cpu_threads(self) -> int:
        """CPU threads per process so that the processes on one machine do not oversubscribe it."""
        return max(1, (os.cpu_count() or 1) // self.local_world)

    def gather(self, items: list) -> list:
        """Concatenate every rank's ``items`` (in rank order) on every rank; gloo, so it works on CPU."""
        if self.world == 1:
            return items
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        parts: list = [None] * self.world
        dist.all_gather_object(parts, items)
        return [x for part in parts for x in part]
