"""Generators and critics, one network family per file; pure nn.Modules without I/O."""

from __future__ import annotations

from volgan.networks.mdcsrn import MdcsrnCritic, MdcsrnGenerator
from volgan.networks.red_wgan import RedWganCritic, RedWganGenerator

__all__ = ["MdcsrnCritic", "MdcsrnGenerator", "RedWganCritic", "RedWganGenerator"]
