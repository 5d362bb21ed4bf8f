"""Alignment scores: normalised mutual information and foreground overlap, on one grid."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from volgan.data.foreground import foreground


def normalised_mutual_information(a: np.ndarray, b: np.ndarray, mask: np.ndarray, bins: int = 32) -> float:
    """Studholme's NMI ``(H(a) + H(b)) / H(a, b)`` over ``mask``: 1 for independent images, 2 for identical."""
    if not np.any(mask):
        return float("nan")
    joint, _, _ = np.histogram2d(a[mask].ravel(), b[mask].ravel(), bins=bins)
    p = joint / joint.sum()

    def entropy(q: np.ndarray) -> float:
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    return (entropy(p.sum(0)) + entropy(p.sum(1))) / entropy(p.ravel())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * float(np.logical_and(a, b).sum()) / total if total else float("nan")


@dataclass(frozen=True)
class AlignmentScore:
    """How well a source resampled onto the target grid matches the target.

    ``nmi``: normalised mutual information over the union of both foregrounds inside the source's
    field of view; ``overlap``: Dice of the two foreground masks; ``coverage``: fraction of the
    target's foreground inside the source's field of view.
    """

    nmi: float
    overlap: float
    coverage: float

    def as_dict(self) -> dict:
        return asdict(self)


def score_step(spacing: tuple[float, ...], mm: float = 2.0) -> tuple[int, ...]:
    """Voxel strides that make scoring grids about ``mm`` coarse (scores need no finer detail)."""
    return tuple(max(1, int(round(mm / s))) for s in spacing)


def foregrounds(target: np.ndarray, source: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Foreground masks of the target and of the source (within its field of view ``inside``)."""
    fg_source = foreground(source, valid=inside) if np.any(inside) else inside
    return foreground(target), fg_source


def alignment_score(target: np.ndarray, source: np.ndarray, inside: np.ndarray,
                    step: tuple[int, ...] = (1, 1, 1)) -> AlignmentScore:
    """Score ``source`` (already on ``target``'s grid) where ``inside`` marks its field of view,
    on every ``step``-th voxel."""
    sub = tuple(slice(None, None, k) for k in step)
    target, source, inside = target[sub], source[sub], inside[sub]
    fg_target, fg_source = foregrounds(target, source, inside)
    if not np.any(inside) or not np.any(fg_target):
        return AlignmentScore(nmi=float("nan"), overlap=0.0, coverage=0.0)
    coverage = float((fg_target & inside).sum() / fg_target.sum())
    union = (fg_target | fg_source) & inside
    return AlignmentScore(
        nmi=normalised_mutual_information(target, source, union),
        overlap=dice(fg_target & inside, fg_source),
        coverage=coverage,
    )
