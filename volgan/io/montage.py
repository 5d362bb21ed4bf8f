"""QA pictures: three orthogonal mid slices of several volumes side by side, one grey scale."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def montage(images: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Rows: axial, coronal, sagittal mid slices; columns: ``images`` (name -> XYZ array).

    All columns share one grey scale, 0 to the 99.5th percentile of the last image. The PNG is
    written under a temporary name and renamed, like every volgan output.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    vmax = float(np.percentile(list(images.values())[-1], 99.5)) or 1.0
    fig, axes = plt.subplots(3, len(images), figsize=(3.2 * len(images), 9.6), squeeze=False)
    for col, (name, vol) in enumerate(images.items()):
        cx, cy, cz = (s // 2 for s in vol.shape)
        for row, sl in enumerate((vol[:, :, cz], vol[:, cy, :], vol[cx, :, :])):
            ax = axes[row, col]
            ax.imshow(sl.T, cmap="gray", origin="lower", vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
    return path
