"""Draw synthetic MR subjects from a tissue anatomy: geometry, contrast, texture, bias, resolution."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from volgan.data.synth.anatomy import TissueAnatomy
from volgan.data.synth.contrast import Contrast, draw_contrast
from volgan.data.synth.spatial import SpatialDraw, draw_spatial, sampling_coordinates, upsampled


@dataclass(frozen=True)
class SynthSubject:
    """One drawn subject.

    Attributes:
        image: ``(X, Y, Z)`` float32 clean (noise-free) intensity; the head's brightest tissue is
            about 1, background 0.
        spacing: its voxel size in mm.
        contrast: the drawn contrast.
        spatial: the drawn geometry.
        params: the other random factors (bias field strength, PSF widths, texture scale).
    """

    image: np.ndarray
    spacing: tuple[float, float, float]
    contrast: Contrast
    spatial: SpatialDraw
    params: dict = field(default_factory=dict)

    @property
    def affine(self) -> np.ndarray:
        """A RAS affine with the subject's voxel size, centred on the grid (for writing NIfTI)."""
        affine = np.diag([*self.spacing, 1.0])
        affine[:3, 3] = -(np.asarray(self.image.shape) - 1) / 2 * np.asarray(self.spacing)
        return affine


def smooth_field(rng: np.random.Generator, shape: Sequence[int], control_points: int) -> np.ndarray:
    """A zero-mean random field of unit-order amplitude, smooth over ``control_points`` per axis."""
    return upsampled(rng.normal(0.0, 1.0, (1,) + (control_points,) * 3), shape)[0]


def sample(volumes: torch.Tensor, coords: np.ndarray) -> np.ndarray:
    """Trilinear samples of ``(C, X, Y, Z)`` volumes at ``(3, *shape)`` voxel indices (0 outside)."""
    size = torch.tensor(volumes.shape[1:], dtype=torch.float32).reshape(3, 1, 1, 1)
    grid = torch.from_numpy(coords) / (size - 1) * 2 - 1  # grid_sample's (x, y, z) index (W, H, D)
    grid = grid.flip(0).permute(1, 2, 3, 0)[None]
    return F.grid_sample(volumes[None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0].numpy()


class SynthMRGenerator:
    """Domain-randomised MR subjects drawn from one :class:`TissueAnatomy`.

    Per draw, at random: an affine (rotation, scale, shear) and a smooth deformation, the
    position of the output grid in the head (field of view), its voxel size (and sometimes a
    thick-slice axis), a contrast (T1/T2/PD-like, fully random, or the anatomy's real T1),
    partial-volume mixing of the probability maps, sub-voxel texture, a multiplicative bias
    field, and a point-spread function blur.

    Args:
        anatomy: tissue maps to draw from.
        shape: output grid in voxels (a training patch, or a whole field of view).
        spacing_range: isotropic voxel size range in mm.
        centre_on_head: probability that the grid is centred on a head voxel (otherwise anywhere
            in the anatomy's box, so background and edges are seen too).
        bias_strength: maximum standard deviation of the log bias field.
        max_psf_sigma: maximum Gaussian PSF width in voxels, per axis.
        centre: a fixed anatomy voxel for the grid's centre (e.g. whole heads), moved by up to
            ``centre_jitter`` voxels per axis; ``None``: drawn as ``centre_on_head`` says.
        spatial_kwargs: more options of :func:`draw_spatial`.

    Examples::

        >>> gen = SynthMRGenerator(anatomy, shape=(48, 48, 48))
        >>> subject = gen.draw(np.random.default_rng(0))
        >>> subject.image.shape
        (48, 48, 48)
    """

    def __init__(self, anatomy: TissueAnatomy, shape: Sequence[int] = (48, 48, 48), *,
                 spacing_range: tuple[float, float] = (0.8, 1.6), centre_on_head: float = 0.9,
                 bias_strength: float = 0.25, max_psf_sigma: float = 0.6, centre: Sequence[float] | None = None,
                 centre_jitter: float = 0.0, **spatial_kwargs):
        self.anatomy = anatomy
        self.shape = tuple(int(n) for n in shape)
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"shape must be three positive sizes, got {shape}")
        self.spacing_range = spacing_range
        self.centre_on_head = centre_on_head
        self.bias_strength = bias_strength
        self.max_psf_sigma = max_psf_sigma
        self.centre, self.centre_jitter = centre, float(centre_jitter)
        self.spatial_kwargs = spatial_kwargs
        self._head = anatomy.head_voxels()
        self._box = np.asarray(anatomy.shape, dtype=float) - 1

    def _centre(self, rng: np.random.Generator) -> np.ndarray:
        if self.centre is not None:
            return np.asarray(self.centre, dtype=float) + rng.uniform(-self.centre_jitter, self.centre_jitter, 3)
        if rng.uniform() < self.centre_on_head and len(self._head):
            return self._head[rng.integers(len(self._head))] + rng.uniform(-0.5, 0.5, 3)
        return rng.uniform(0.0, 1.0, 3) * self._box

    def draw(self, rng: np.random.Generator) -> SynthSubject:
        """One subject; reproducible for a generator seeded the same way."""
        spatial = draw_spatial(rng, self._centre(rng), spacing_range=self.spacing_range, **self.spatial_kwargs)
        contrast = draw_contrast(rng)
        coords = sampling_coordinates(spatial, self.shape, self.anatomy.spacing)
        *probs, base = sample(self.anatomy.volumes, coords)
        texture_scale = float(rng.uniform(0.5, 1.5))
        texture = ndimage.gaussian_filter(rng.normal(0.0, 1.0, self.shape).astype(np.float32), texture_scale)
        texture /= max(float(texture.std()), 1e-6)
        if contrast.kind == "template":
            image = base * sum(p * m for p, m in zip(probs, contrast.means))
            image += sum(p * m * s for p, m, s in zip(probs, contrast.means, contrast.spreads)) * base * texture
        else:
            image = sum(p * m * (1.0 + s * texture) for p, m, s in zip(probs, contrast.means, contrast.spreads))
        bias_sd = float(rng.uniform(0.0, self.bias_strength))
        image = image * np.exp(bias_sd * smooth_field(rng, self.shape, 4)).astype(np.float32)
        psf = rng.uniform(0.0, self.max_psf_sigma, 3)
        image = ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), psf)
        image = np.clip(image, 0.0, None).astype(np.float32)
        params = {"bias_sd": bias_sd, "psf_sigma_voxels": [float(s) for s in psf], "texture_scale": texture_scale}
        return SynthSubject(image, spatial.spacing, contrast, spatial, params)
