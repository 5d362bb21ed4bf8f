"""Synthetic training pairs as a PyTorch dataset: every item a fresh, seeded draw."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from volgan.data.synth.mr_generator import SynthMRGenerator
from volgan.degrade.rician import add_rician_noise


def seeded_subject_rng(seed: int, index: int, epoch: int = 0) -> np.random.Generator:
    """The random generator of item ``index`` of ``epoch`` for a dataset seeded with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index)]))


class SynthPairDataset(Dataset):
    """Items drawn fresh from a subject generator: item ``i`` of :attr:`epoch` comes from its own
    seeded random generator, and its clean subject is scaled by ``1 +- scale_jitter`` (brightest
    tissue about 1, as the inference normaliser's percentile varies). Subclasses make the pair."""

    def __init__(self, generator: SynthMRGenerator, length: int, seed: int, scale_jitter: float):
        self.generator, self.length, self.seed = generator, int(length), int(seed)
        self.scale_jitter = float(scale_jitter)
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def subject(self, index: int) -> tuple[np.ndarray, np.random.Generator]:
        """Item ``index``'s scaled clean subject and the random generator to degrade it with."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = seeded_subject_rng(self.seed, index, self.epoch)
        clean = self.generator.draw(rng).image
        clean *= 1.0 + rng.uniform(-self.scale_jitter, self.scale_jitter)
        return clean, rng


class SynthDenoisingDataset(SynthPairDataset):
    """``{"image": noisy, "label": clean}`` pairs, each item a new synthetic subject.

    The clean subject is scaled so that its brightest tissue is about 1 (a random factor of
    ``1 +- scale_jitter``, as the inference normaliser's percentile varies); Rician noise with a
    level drawn uniformly from ``levels`` (percent of 1) is added. Items are ``(1, X, Y, Z)``
    float32 tensors. Item ``i`` is the same for the same ``seed`` and :attr:`epoch` (set it per
    epoch for fresh draws).

    Args:
        generator: the subject generator (its ``shape`` is the patch size).
        length: items per epoch.
        seed: base seed.
        levels: (low, high) Rician noise level in percent.
        scale_jitter: relative spread of the intensity scale.
    """

    def __init__(self, generator: SynthMRGenerator, length: int = 1000, *, seed: int = 0,
                 levels: tuple[float, float] = (1.0, 15.0), scale_jitter: float = 0.2):
        if not 0 <= levels[0] <= levels[1] <= 100:
            raise ValueError(f"levels must be (low, high) percentages, got {levels}")
        super().__init__(generator, length, seed, scale_jitter)
        self.levels = (float(levels[0]), float(levels[1]))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        clean, rng = self.subject(index)
        level = rng.uniform(*self.levels)
        noisy = add_rician_noise(clean, level, seed=rng, peak=1.0)
        return {"image": torch.from_numpy(noisy[None]), "label": torch.from_numpy(clean[None]),
                "level": torch.tensor(level, dtype=torch.float32)}
