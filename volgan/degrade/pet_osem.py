"""OSEM reconstruction for the multi-slice PET projector, with attenuation and an additive background.

The data model is the one a scanner's corrections assume::

    expected prompts = scale * attenuation * A(psf(image)) + background

``A`` is a :class:`~volgan.degrade.pet_projector.ParallelBeamProjector` (its ``n_subsets`` fix the
OSEM subsets), ``attenuation`` the factors ``exp(-line integral of mu)``, ``background`` the expected
scatter + randoms (known to the reconstruction, as after a scanner's estimates), ``scale`` the counts
per unit of line integral, so that the image comes out in the units of the activity that made the data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from volgan.degrade.pet_projector import ParallelBeamProjector

Smoother = Callable[[np.ndarray], np.ndarray]


def subset_sensitivities(
    projector: ParallelBeamProjector,
    attenuation: np.ndarray,
    psf: Smoother | None = None,
) -> list[np.ndarray]:
    """``psf^T A_s^T attenuation_s`` for each subset ``s``: the OSEM normalisation images per unit scale.

    They depend on the attenuation and the geometry only, so one list serves every dose.
    """
    sens = []
    for s, views in enumerate(projector.subset_views):
        image = projector.back_subset(attenuation[views], s)
        sens.append(psf(image) if psf is not None else image)
    return sens


def osem(
    prompts: np.ndarray,
    projector: ParallelBeamProjector,
    *,
    attenuation: np.ndarray,
    background: np.ndarray | float,
    scale: float,
    iterations: int = 3,
    psf: Smoother | None = None,
    sensitivities: list[np.ndarray] | None = None,
    image: np.ndarray | None = None,
) -> np.ndarray:
    """Ordered-subsets expectation maximisation (Hudson & Larkin 1994) on measured prompts.

    Args:
        prompts: measured counts, ``(n_angles, n_bins, nz)``.
        projector: the system geometry; its ``n_subsets`` views sets are the subsets.
        attenuation: attenuation factors in ``(0, 1]``, same shape as ``prompts``.
        background: expected scatter + randoms counts, same shape as ``prompts`` (or a scalar).
        scale: counts per unit of line integral of the image (see the module docstring).
        iterations: full passes over the subsets.
        psf: optional self-adjoint image-space blur modelled in the system (resolution modelling).
        sensitivities: :func:`subset_sensitivities` for this ``attenuation`` and ``psf`` (independent of
            ``scale``), to reuse across several data sets; computed when None.
        image: start image ``(nx, ny, nz)``; default a uniform image matching the net counts.

    Returns:
        float32 image ``(nx, ny, nz)``, non-negative, in the units of the activity.
    """
    y = np.asarray(prompts, dtype=np.float32)
    if y.ndim != 3 or y.shape[:2] != (projector.n_angles, projector.n_bins):
        raise ValueError(f"prompts must be ({projector.n_angles}, {projector.n_bins}, nz), got {y.shape}")
    if np.shape(attenuation) != y.shape:
        raise ValueError(f"attenuation has shape {np.shape(attenuation)}, prompts {y.shape}")
    if np.ndim(background) and np.shape(background) != y.shape:
        raise ValueError(f"background has shape {np.shape(background)}, prompts {y.shape}")
    if iterations < 1 or scale <= 0:
        raise ValueError(f"need iterations >= 1 and scale > 0, got {iterations}, {scale}")
    bg = np.broadcast_to(np.asarray(background, dtype=np.float32), y.shape)
    if sensitivities is None:
        sensitivities = subset_sensitivities(projector, attenuation, psf)
    inverse = [np.divide(np.float32(1.0 / scale), s, out=np.zeros_like(s), where=s > 0) for s in sensitivities]
    if image is None:
        net = max(float(y.sum(dtype=np.float64) - bg.sum(dtype=np.float64)), 1.0)
        total = float(sum(s.sum(dtype=np.float64) for s in sensitivities))
        image = np.full((*projector.shape, y.shape[2]), net / (scale * total), np.float32)
    x = np.array(image, dtype=np.float32)
    views = projector.subset_views
    weights = [np.float32(scale) * np.ascontiguousarray(attenuation[v], dtype=np.float32) for v in views]
    data = [np.ascontiguousarray(y[v]) for v in projector.subset_views]
    backgrounds = [np.ascontiguousarray(bg[v]) for v in projector.subset_views]
    for _ in range(int(iterations)):
        for s in range(projector.n_subsets):
            expected = projector.forward_subset(psf(x) if psf is not None else x, s)
            expected *= weights[s]
            expected += backgrounds[s]
            ratio = np.divide(data[s], expected, out=np.zeros_like(expected), where=expected > 0)
            ratio *= weights[s]
            update = projector.back_subset(ratio, s)
            if psf is not None:
                update = psf(update)
            update *= inverse[s]
            x *= update
    return x
