"""Random MR contrasts: a mean intensity and a texture spread per tissue class."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from volgan.data.synth.anatomy import TISSUES

# typical relative intensities (grey matter, white matter, CSF, scalp/fat, skull/muscle)
CONTRASTS: dict[str, tuple[float, ...]] = {
    "t1": (0.55, 0.85, 0.15, 0.95, 0.25),
    "t2": (0.60, 0.45, 1.00, 0.70, 0.20),
    "pd": (0.85, 0.70, 0.80, 0.90, 0.30),
}


@dataclass(frozen=True)
class Contrast:
    """One subject's contrast.

    Attributes:
        kind: ``t1``, ``t2``, ``pd``, ``random`` (every mean drawn at random) or ``template``
            (the real T1 intensity of the anatomy, scaled per tissue).
        means: mean intensity per tissue in ``TISSUES`` order (background is 0).
        spreads: relative standard deviation of each tissue's texture.
    """

    kind: str
    means: tuple[float, ...]
    spreads: tuple[float, ...]


def draw_contrast(rng: np.random.Generator, *, template_probability: float = 0.25,
                  random_probability: float = 0.25, jitter: float = 0.15,
                  spread_range: tuple[float, float] = (0.0, 0.08)) -> Contrast:
    """A contrast: ``template`` / fully ``random`` with the given probabilities, otherwise one of
    the T1-, T2- and PD-like presets with each mean jittered by up to ``jitter`` (relative)."""
    u = rng.uniform()
    n = len(TISSUES)
    if u < template_probability:
        kind, means = "template", 1.0 + rng.uniform(-jitter, jitter, n)
    elif u < template_probability + random_probability:
        kind, means = "random", rng.uniform(0.05, 1.0, n)
    else:
        kind = str(rng.choice(sorted(CONTRASTS)))
        means = np.asarray(CONTRASTS[kind]) * (1.0 + rng.uniform(-jitter, jitter, n))
    spreads = rng.uniform(*spread_range, n)
    return Contrast(kind, tuple(float(m) for m in means), tuple(float(s) for s in spreads))
