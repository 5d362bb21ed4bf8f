"""volgan: 3D volumetric reconstruction with GANs, built on MONAI."""

from __future__ import annotations

__version__ = "0.1.0"
