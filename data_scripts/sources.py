"""Where the offline data that ships inside PyPI packages lives (no downloads)."""

from __future__ import annotations

from pathlib import Path


def nilearn_data(name: str) -> Path:
    """A file of nilearn's bundled data folder (the MNI152 2009c symmetric templates, 1 mm)."""
    import nilearn.datasets

    path = Path(nilearn.datasets.__file__).parent / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not shipped by this nilearn version; install nilearn>=0.10")
    return path


def mni152(kind: str = "t1") -> Path:
    """``kind`` in t1, gm, wm: MNI ICBM152 2009a symmetric, skull-stripped T1 and tissue maps."""
    return nilearn_data(f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz")


def pydeface_mean_head() -> Path:
    """pydeface's average head (T1-weighted, not skull-stripped, 176x256x256)."""
    import pydeface

    path = Path(pydeface.__file__).parent / "data" / "mean_reg2mean.nii.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pydeface does not ship its mean head; install pydeface>=2.0")
    return path
