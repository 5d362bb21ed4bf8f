"""Self-ensemble over flips: average a predictor's outputs over the flips of the three axes."""

from __future__ import annotations

from itertools import product

import numpy as np

from volgan.io.volume import Volume


def flip_axes(flips: int) -> list[tuple[int, ...]]:
    """The first ``flips`` (1, 2, 4 or 8) axis subsets to flip, the identity first."""
    if flips not in (1, 2, 4, 8):
        raise ValueError(f"flips must be 1, 2, 4 or 8, got {flips}")
    subsets = [tuple(a for a, f in zip((2, 1, 0), bits) if f) for bits in product((0, 1), repeat=3)]
    return [tuple(sorted(s)) for s in subsets[:flips]]


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
        total = None
        for axes in self.axes:
            out = self.predictor.predict_array(np.ascontiguousarray(np.flip(array, axes)), **kwargs)
            out = np.flip(out, axes).astype(np.float64)
            total = out if total is None else total + out
        return (total / len(self.axes)).astype(np.float32)

    def predict(self, volume: Volume) -> Volume:
        if len(self.axes) == 1:
            return self.predictor.predict(volume)
        total = None
        result = volume
        for axes in self.axes:
            flipped = volume.with_array(np.ascontiguousarray(np.flip(volume.array, axes)))
            result = self.predictor.predict(flipped)
            out = np.flip(result.array, axes).astype(np.float64)
            total = out if total is None else total + out
        return result.with_array((total / len(self.axes)).astype(np.float32))
