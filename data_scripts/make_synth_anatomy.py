"""Build the tissue anatomy that volgan's synthetic MR subjects are drawn from (offline packages only).

- brain: nilearn's MNI152 2009a grey and white matter probability maps; CSF is the rest of the
  template's brain mask;
- head: pydeface's mean head, rigidly registered onto the MNI152 grid (Mattes MI of the MNI brain
  against the head), split outside the brain into bright (scalp, fat) and dark (skull, muscle)
  soft classes by intensity;
- template intensity: the MNI152 T1 inside the brain and the mean head outside, both scaled so that
  white matter is about 0.85.

The anatomy is used for training and validation draws only. Held-out test sets must come from
other anatomy (data_scripts/make_heldout_mr.py uses Colin27 from Debian's mricron-data).

Usage: python data_scripts/make_synth_anatomy.py --out data/synth/anatomy.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sources import mni152, pydeface_mean_head  # noqa: E402

from volgan.data.registration import register, resample_to  # noqa: E402
from volgan.data.sitk_image import array_to_sitk  # noqa: E402
from volgan.data.synth import TissueAnatomy  # noqa: E402
from volgan.io import read_nifti  # noqa: E402


def soft_step(x: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip((x - low) / (high - low), 0.0, 1.0)


def build() -> TissueAnatomy:
    t1, gm, wm = (read_nifti(mni152(k)) for k in ("t1", "gm", "wm"))
    brain = ndimage.binary_fill_holes(t1.array > 0)
    gm_p, wm_p = gm.array / 255.0, wm.array / 255.0
    csf_p = np.clip(brain - gm_p - wm_p, 0.0, 1.0)
    wm_level = float(np.percentile(t1.array[wm_p > 0.9], 50))

    head = read_nifti(pydeface_mean_head())
    fixed = array_to_sitk(head.array, head.affine)
    moving = array_to_sitk(t1.array, t1.affine)
    result = register(fixed, moving, kind="rigid", shrink_factors=(8, 4, 2), smoothing_sigmas=(4.0, 2.0, 1.0),
                      iterations=150, sampling_fraction=0.05)
    print(f"MNI152 brain onto the mean head: Mattes MI {result.metric:.3f}")
    on_mni = resample_to(fixed, moving, result.transform.GetInverse())
    head_t1 = np.transpose(sitk.GetArrayFromImage(on_mni), (2, 1, 0)).astype(np.float32)
    head_brain = np.percentile(head_t1[wm_p > 0.9], 50)
    head_t1 = head_t1 / max(float(head_brain), 1e-6) * 0.85

    head_mask = ndimage.binary_fill_holes(ndimage.binary_closing(head_t1 > 0.12, iterations=3))
    outside = np.clip(ndimage.gaussian_filter(head_mask.astype(np.float32), 0.7) - (gm_p + wm_p + csf_p), 0, 1)
    bright = soft_step(ndimage.gaussian_filter(head_t1, 0.7), 0.35, 0.7)
    scalp = outside * bright
    skull = outside - scalp
    template = np.where(brain, t1.array / wm_level * 0.85, head_t1).clip(0, 1.5) / 1.5
    maps = np.stack([gm_p, wm_p, csf_p, scalp, skull]).astype(np.float32)
    maps /= np.maximum(maps.sum(0, keepdims=True), 1.0)
    source = ("nilearn MNI152 2009a sym (GM, WM, T1), pydeface mean_reg2mean head registered rigidly "
              f"(Mattes MI {result.metric:.3f})")
    return TissueAnatomy(maps, template.astype(np.float32), (1.0, 1.0, 1.0), source)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/synth/anatomy.npz")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        print(f"{out} exists; kept")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    anatomy = build()
    tmp = out.with_name(out.name + ".partial.npz")
    anatomy.save(tmp)
    tmp.replace(out)
    print(f"wrote {out}: {anatomy.shape}, head voxels {len(anatomy.head_voxels())}")


if __name__ == "__main__":
    main()
