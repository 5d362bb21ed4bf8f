"""Rician noise, the noise of magnitude MR images (RED-WGAN's simulation protocol)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.transforms import MapTransform, Randomizable


def rician_sigma(clean: np.ndarray | torch.Tensor, level_percent: float, peak: float | None = None) -> float:
    """Noise standard deviation for a level given in % of the clean volume's maximum (or ``peak``)."""
    if not 0 <= level_percent <= 100:
        raise ValueError(f"noise level must be a percentage in [0, 100], got {level_percent}")
    peak = float(clean.max()) if peak is None else float(peak)
    return level_percent / 100.0 * peak


def add_rician_noise(
    clean: np.ndarray,
    level_percent: float,
    *,
    seed: int | np.random.Generator | None = None,
    peak: float | None = None,
) -> np.ndarray:
    """Add Rician noise: ``sqrt((x + n1)^2 + n2^2)`` with ``n1, n2 ~ N(0, sigma)``.

    Args:
        clean: noise-free magnitude image (any shape).
        level_percent: ``sigma`` as a percentage of ``clean.max()`` (RED-WGAN used 1-15%).
        seed: integer seed or a numpy Generator, for reproducible noise.
        peak: the clean maximum to take the percentage of, when ``clean`` is only a patch of the
            volume (default: ``clean.max()``).

    Returns:
        float32 array of the same shape.

    Examples::

        >>> noisy = add_rician_noise(np.ones((4, 4, 4)), 5.0, seed=0)
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    sigma = rician_sigma(clean, level_percent, peak)
    x = np.asarray(clean, dtype=np.float32)
    real = x + rng.normal(0.0, sigma, size=x.shape).astype(np.float32)
    imag = rng.normal(0.0, sigma, size=x.shape).astype(np.float32)
    return np.sqrt(real * real + imag * imag)


def _noisy_like(clean, level: float, rng: np.random.Generator, peak: float | None):
    arr = clean.detach().cpu().numpy() if isinstance(clean, torch.Tensor) else np.asarray(clean)
    noisy = add_rician_noise(arr, level, seed=rng, peak=peak)
    if isinstance(clean, torch.Tensor):
        out = clean.detach().clone()
        out.copy_(torch.from_numpy(noisy))
        return out
    return noisy


class RandRicianNoised(Randomizable, MapTransform):
    """Make a noisy input from a clean one, at a random level, for training pairs.

    Reads ``clean_key``, writes ``noisy_key``. The level is drawn uniformly from ``levels``
    (percent of ``peak``, or of the clean array's maximum when ``peak`` is None; pass ``peak``
    when the clean array is a patch of a volume normalised so that its maximum is ``peak``).
    Seeded by MONAI's ``set_determinism`` / ``set_random_state``.
    """

    def __init__(
        self,
        clean_key: str = "label",
        noisy_key: str = "image",
        levels: Sequence[float] = (1.0, 15.0),
        peak: float | None = None,
    ):
        MapTransform.__init__(self, keys=[clean_key])
        if len(levels) != 2 or not 0 <= levels[0] <= levels[1] <= 100:
            raise ValueError(f"levels must be (low, high) percentages, got {levels}")
        self.clean_key, self.noisy_key, self.levels, self.peak = clean_key, noisy_key, tuple(map(float, levels)), peak
        self._level = self.levels[0]

    def randomize(self, data=None) -> None:
        self._level = float(self.R.uniform(*self.levels))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        self.randomize()
        rng = np.random.default_rng(self.R.randint(0, 2**31 - 1))
        d[self.noisy_key] = _noisy_like(d[self.clean_key], self._level, rng, self.peak)
        return d


class RicianNoised(MapTransform):
    """Deterministic Rician noise at a fixed ``level`` and ``seed`` (validation pairs; cacheable)."""

    def __init__(self, clean_key: str = "label", noisy_key: str = "image", level: float = 5.0, seed: int = 0):
        MapTransform.__init__(self, keys=[clean_key])
        self.clean_key, self.noisy_key, self.level, self.seed = clean_key, noisy_key, float(level), int(seed)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        d[self.noisy_key] = _noisy_like(d[self.clean_key], self.level, np.random.default_rng(self.seed), None)
        return d
