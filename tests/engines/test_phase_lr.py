"""The learning rate switch at the end of L1 pre-training."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine

from volgan.engines.phase_lr import PhaseLearningRate


def test_learning_rate_changes_after_the_start_iteration():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    seen = []
    engine = Engine(lambda e, b: seen.append(opt.param_groups[0]["lr"]))
    PhaseLearningRate(opt, start_iteration=3, lr=5e-6).attach(engine)
    engine.run(range(5), max_epochs=1)
    assert seen == [1e-3, 1e-3, 1e-3, 5e-6, 5e-6]


def test_invalid():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError):
        PhaseLearningRate(opt, start_iteration=-1, lr=1.0)
