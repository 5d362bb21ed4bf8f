"""Fresh synthetic subjects every epoch: sets a dataset's ``epoch`` when an ignite epoch starts."""

from __future__ import annotations

from ignite.engine import Engine, Events


class FreshDraws:
    """Handler that sets ``dataset.epoch = engine.state.epoch`` at the start of each epoch.

    Datasets that seed item ``i`` by ``(seed, epoch, i)`` (e.g.
    :class:`volgan.data.synth.SynthDenoisingDataset`) then give new, reproducible subjects each
    epoch, and a run resumed at epoch ``E`` continues the same sequence.

    Args:
        dataset: any object with a writable ``epoch`` attribute.
    """

    def __init__(self, dataset) -> None:
        if not hasattr(dataset, "epoch"):
            raise TypeError(f"{type(dataset).__name__} has no 'epoch' attribute to set")
        self.dataset = dataset

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        self.dataset.epoch = int(engine.state.epoch)
