"""Generators and critics, one network family per file; pure nn.Modules without I/O."""

from __future__ import annotations

from volgan.networks.mdcsrn import MdcsrnCritic, MdcsrnGenerator
from volgan.networks.pet_cgan import ConcatenatedGenerator, PetPatchDiscriminator, PetUNetGenerator, pet_generator
from volgan.networks.red_wgan import RedWganCritic, RedWganGenerator

__all__ = [
    "ConcatenatedGenerator",
    "MdcsrnCritic",
    "MdcsrnGenerator",
    "PetPatchDiscriminator",
    "PetUNetGenerator",
    "RedWganCritic",
    "RedWganGenerator",
    "pet_generator",
]
