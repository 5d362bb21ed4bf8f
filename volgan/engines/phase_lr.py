"""Switch optimisers to a new learning rate when a training phase starts (e.g. after L1 pre-training)."""

from __future__ import annotations

from collections.abc import Sequence

from ignite.engine import Engine, Events
from torch.optim import Optimizer


class PhaseLearningRate:
    """From iteration ``start_iteration + 1`` on, every param group of ``optimizers`` uses ``lr``.

    Checked at the start of every iteration, so a run resumed after the switch also gets the new
    rate (the optimiser state loaded from a checkpoint may still hold the old one).

    Args:
        optimizers: one optimiser or several.
        start_iteration: last iteration of the previous phase (e.g. the trainer's ``warmup_iterations``).
        lr: learning rate of the new phase.
    """

    def __init__(self, optimizers: Optimizer | Sequence[Optimizer], start_iteration: int, lr: float):
        self.optimizers = [optimizers] if isinstance(optimizers, Optimizer) else list(optimizers)
        if start_iteration < 0 or lr <= 0:
            raise ValueError(f"need start_iteration >= 0 and lr > 0, got {start_iteration}, {lr}")
        self.start_iteration, self.lr = int(start_iteration), float(lr)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        # ITERATION_STARTED fires after the counter is incremented: this is the iteration about to run
        if engine.state.iteration > self.start_iteration:
            for opt in self.optimizers:
                for group in opt.param_groups:
                    group["lr"] = self.lr
