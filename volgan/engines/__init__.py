"""Training engines built on MONAI's ignite workflows."""

from __future__ import annotations

from volgan.engines.distributed import average_gradients, broadcast_parameters
from volgan.engines.fresh_draws import FreshDraws
from volgan.engines.paired_gan_trainer import PairedGanTrainer, loss_terms

__all__ = ["FreshDraws", "PairedGanTrainer", "average_gradients", "broadcast_parameters", "loss_terms"]
