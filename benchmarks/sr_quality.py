"""Held-out super-resolution quality of the mDCSRN bundle against interpolation, and its speed.

Test volume: pydeface's mean head (data/sr/test, made by data_scripts/make_sr_data.py; never used
for training). Scores: PSNR and 3D SSIM (volgan.metrics, data_range = maximum of the clean volume)
inside the head mask and inside the brain mask, on the full 1 mm grid.

- k-space 2x2 truncation (central half of k-space along axes 0 and 1): the truncated input as is,
  and the bundle (mode kspace, same grid);
- 4 mm thick slices (axis 2): nearest, linear and cubic (B-spline) interpolation onto the 1 mm
  target grid (volgan.data.target_grid), and the bundle (mode thick: cubic, then the network).
  The test head's voxels are 1 x 0.977 x 0.977 mm, so its "4 mm" slices are 4 x 0.977 = 3.906 mm
  and the target spacing is the head's own (passed to the bundle as ``target_spacing``).

All methods get the same input: a crop of the degraded test volume (default 128x128x96 voxels
around the centre of the brain mask, its z range aligned to the 4-slice slabs; whole-volume
inference takes ~10 min per run on this 2-core CPU), and are scored on that crop.

Extra generator weights (e.g. the L1-only checkpoint at the end of pre-training) can be scored
with --weights NAME=PATH. The bundle's inference time on the 1 mm k-space input gives voxels/s.

Usage: python benchmarks/sr_quality.py --data data/sr --bundle bundles/mri_sr_mdcsrn \
           [--weights l1=bundles/mri_sr_mdcsrn/eval/generator_generator_epoch=7.pt] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from volgan.data.target_grid import resample_to_target
from volgan.io import Volume, read_nifti
from volgan.metrics import psnr, ssim


def bundle_sr_predictor(bundle: Path, mode: str, spacing: list[float], checkpoint: str | None = None):
    """The bundle's ``predictor`` (resampling + refinement) for ``mode``, ``spacing`` and weights."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.yaml"))
    parser["bundle_root"] = str(bundle)
    parser["mode"] = mode
    parser["target_spacing"] = spacing
    parser["device"] = "$torch.device('cpu')"
    if checkpoint is not None:
        parser["ckpt_path"] = checkpoint
    return parser.get_parsed_content("predictor")


def crop_region(mask: np.ndarray, size: tuple[int, int, int], slab: int) -> tuple[slice, slice, slice]:
    """``size`` voxels around the centre of ``mask``; the last axis starts and ends on slab boundaries."""
    idx = np.argwhere(mask)
    centre = (idx.min(0) + idx.max(0)) // 2
    out = []
    for axis, (c, s, n) in enumerate(zip(centre, size, mask.shape)):
        start = int(np.clip(c - s // 2, 0, max(n - s, 0)))
        if axis == 2:
            start -= start % slab
        out.append(slice(start, start + min(s, n)))
    return tuple(out)  # type: ignore[return-value]


def crop_volume(volume: Volume, region: tuple[slice, ...], factor: tuple[int, int, int] = (1, 1, 1)) -> Volume:
    """Crop ``volume`` to ``region`` given in thin voxels; ``factor`` thin voxels per voxel of ``volume``."""
    index = tuple(slice(r.start // f, r.stop // f) for r, f in zip(region, factor))
    affine = volume.affine.copy()
    affine[:3, 3] = volume.affine[:3, :3] @ np.array([i.start for i in index]) + volume.affine[:3, 3]
    return volume.with_array(np.ascontiguousarray(volume.array[index]), affine=affine)


def scores(pred: np.ndarray, clean: np.ndarray, masks: dict[str, np.ndarray], peak: float) -> dict[str, float]:
    out = {}
    for name, mask in masks.items():
        out[f"psnr_{name}"] = round(psnr(pred, clean, data_range=peak, mask=mask), 3)
        out[f"ssim_{name}"] = round(ssim(pred, clean, data_range=peak, mask=mask), 4)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/sr")
    parser.add_argument("--bundle", default="bundles/mri_sr_mdcsrn")
    parser.add_argument("--weights", nargs="*", default=[], help="NAME=PATH generator weights to score as well")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--crop", type=int, nargs=3, default=(128, 128, 96), help="0 0 0: the whole volume")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data, bundle = Path(args.data), Path(args.bundle)
    splits = json.loads((data / "splits.json").read_text())
    slab = int(splits["degradations"]["slice_factor"])
    clean_full = read_nifti(splits["test"]["clean"])
    brain_full = read_nifti(splits["test_brain_mask"]).array > 0.5
    crop = tuple(args.crop) if any(args.crop) else clean_full.shape
    region = crop_region(brain_full, crop, slab)
    clean_volume = crop_volume(clean_full, region)
    clean = clean_volume.array
    masks = {
        "head": read_nifti(splits["test_head_mask"]).array[region] > 0.5,
        "brain": brain_full[region],
    }
    peak = float(clean_full.array.max())
    # the test head has 1 x 0.977 x 0.977 mm voxels (so its "4 mm" slices are 3.906 mm): the target
    # grid is its own thin grid
    spacing = [float(v) for v in clean_volume.spacing]
    weights = {"bundle": None, **dict(w.split("=", 1) for w in args.weights)}
    rows = []

    def add(degradation: str, method: str, pred: np.ndarray, seconds: float | None = None) -> None:
        assert pred.shape == clean.shape, (pred.shape, clean.shape)
        row = {"degradation": degradation, "method": method, **scores(pred, clean, masks, peak)}
        if seconds is not None:
            row["seconds"] = round(seconds, 1)
            row["voxels_per_s"] = round(pred.size / seconds)
        rows.append(row)
        print(json.dumps(row), flush=True)

    kspace = crop_volume(read_nifti(splits["test"]["kspace"]), region)
    add("kspace 2x2", "input as is", kspace.array)
    for name, path in weights.items():
        predictor = bundle_sr_predictor(bundle, "kspace", spacing, path)
        t0 = time.perf_counter()
        out = predictor.predict(kspace)
        add("kspace 2x2", name, out.array, time.perf_counter() - t0)

    thick = crop_volume(read_nifti(splits["test"]["thick4"]), region, (1, 1, slab))
    for interpolation in ("nearest", "linear", "cubic"):
        up = resample_to_target(thick, spacing, interpolation)
        assert np.allclose(up.affine, clean_volume.affine, atol=1e-4)
        add("thick 4 mm", interpolation, up.array)
    for name, path in weights.items():
        predictor = bundle_sr_predictor(bundle, "thick", spacing, path)
        t0 = time.perf_counter()
        out = predictor.predict(thick)
        add("thick 4 mm", name, out.array, time.perf_counter() - t0)

    result = {"test_volume": splits["test"]["clean"], "crop": [[r.start, r.stop] for r in region], "data_range": peak,
              "target_spacing": spacing,
              "threads": args.threads, "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
