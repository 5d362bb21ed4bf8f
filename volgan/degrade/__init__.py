"""Forward models that turn clean volumes into degraded training inputs."""

from __future__ import annotations

from volgan.degrade.rician import RandRicianNoised, RicianNoised, add_rician_noise, rician_sigma

__all__ = ["RandRicianNoised", "RicianNoised", "add_rician_noise", "rician_sigma"]
