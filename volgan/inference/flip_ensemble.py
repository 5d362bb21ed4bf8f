"""Self-ensemble over flips: average a predictor's outputs over the flips of the three axes."""

from __future__ import annotations

from collections.abc import Callable
from itertools import product

import numpy as np

from volgan.io.volume import Volume


def flip_axes(flips: int) -> list[tuple[int, ...]]:
    """The first ``flips`` (1, 2, 4 or 8) axis subsets to flip, the identity first."""
    if flips not in (1, 2, 4, 8):
        raise ValueError(f"flips must be 1, 2, 4 or 8, got {flips}")
    subsets = [tuple(a for a, f in zip((2, 1, 0), bits) if f) for bits in product((0, 1), repeat=3)]
    return [tuple(sorted(s)) for s in subsets[:flips]]


def mean_over_flips(array: np.ndarray, run: Callable[[np.ndarray], np.ndarray],
                    axes: list[tuple[int, ...]]) -> np.ndarray:
    """The mean of ``run`` over flipped copies of ``array``, each output flipped back (float32)."""
    total = np.zeros(array.shape, dtype=np.float64)
    for flip in axes:
        total += np.flip(run(np.ascontiguousarray(np.flip(array, flip))), flip)
    return (total / len(axes)).astype(np.float32)


class FlipEnsemblePredictor:
    """Wrap a same-grid predictor: run it on flipped copies of the input and average the results
    flipped back (a self-ensemble: ``flips`` times the cost, less variance at window seams and in
    the network's output).

    Args:
        predictor: object with ``predict(Volume) -> Volume`` on the input's grid.
        flips: 1 (no ensemble), 2, 4 or 8 flipped copies.
    """

    def __init__(self, predictor, flips: int = 8):
        self.axes = flip_axes(int(flips))
        self.predictor = predictor

    def predict_array(self, array: np.ndarray, **kwargs) -> np.ndarray:
        """The same ensemble on a bare 3D array (``kwargs`` go to the wrapped ``predict_array``)."""
        return mean_over_flips(array, lambda a: self.predictor.predict_array(a, **kwargs), self.axes)

    def predict(self, volume: Volume) -> Volume:
        if len(self.axes) == 1:
            return self.predictor.predict(volume)
        results: list[Volume] = []

        def run(flipped: np.ndarray) -> np.ndarray:
            results.append(self.predictor.predict(volume.with_array(flipped)))
            return results[-1].array

        mean = mean_over_flips(volume.array, run, self.axes)
        return results[-1].with_array(mean)
