"""Domain-randomised synthetic MR subjects (in the spirit of SynthSeg / SynthSR, Billot et al.).

Every training subject is drawn fresh from tissue probability maps: a random affine and smooth
deformation, a random contrast, partial-volume mixing, sub-voxel texture, a bias field, a random
field of view, head position and voxel size, and a random point-spread function. The clean target
and the degraded input come from the same draw.
"""

from __future__ import annotations

from volgan.data.synth.anatomy import TISSUES, TissueAnatomy
from volgan.data.synth.contrast import CONTRASTS, Contrast, draw_contrast
from volgan.data.synth.dataset import SynthDenoisingDataset, seeded_subject_rng
from volgan.data.synth.mr_generator import SynthMRGenerator, SynthSubject
from volgan.data.synth.pet_phantom import (
    DOSES as PET_DOSES,
    Lesion,
    PetPhantom,
    PetPhantomGenerator,
    simulate_phantom,
)
from volgan.data.synth.spatial import SpatialDraw, draw_spatial, sampling_coordinates

__all__ = [
    "CONTRASTS",
    "TISSUES",
    "Contrast",
    "Lesion",
    "PET_DOSES",
    "PetPhantom",
    "PetPhantomGenerator",
    "SpatialDraw",
    "SynthDenoisingDataset",
    "SynthMRGenerator",
    "SynthSubject",
    "TissueAnatomy",
    "draw_contrast",
    "draw_spatial",
    "sampling_coordinates",
    "seeded_subject_rng",
    "simulate_phantom",
]
