"""Held-out super-resolution quality of the mDCSRN bundle against interpolation.

Test volume: a held-out set of data_scripts/make_heldout_mr.py (default Colin27 at 1 mm: anatomy no
training, validation or choice ever used). Its clean volume is degraded by the bundle's own
acquisition models, over the whole field of view:

- thick slices (``--thickness``, default 3 4 5 6 mm) along ``--axis``: each slab the mean of its thin
  slices (volgan.degrade.thick_slices), slabs starting at the first slice;
- k-space truncation (``--kspace-factor``, default 2: the central half of k-space along axes 0 and 1,
  Chen et al.'s 2x2 truncation), on the original grid.

Methods, all given the same input (the degraded volume cropped to a region around the brain with a
margin, ``--crop``; ``0 0 0``: the whole volume): nearest, linear and cubic B-spline interpolation
onto the thin grid (volgan.data.target_grid, as the bundle resamples) or the truncated input as is,
and the bundle's predictor with each generator weights file (``--weights NAME=PATH``; default the
bundle's ``models/model.pt``). Scores on the region without the margin: PSNR and 3D SSIM in the
head mask and the brain mask (data range: the clean maximum), and the sharpness in the brain (mean
gradient magnitude relative to the clean volume's).

Usage: python benchmarks/sr_quality.py --set data/heldout_mr/colin27_1mm --bundle bundles/mri_sr_mdcsrn \
           [--weights content=PATH gan=PATH] [--thickness 3 4 5 6] [--json out.json] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from volgan.data.target_grid import resample_to_target
from volgan.degrade.kspace import truncate_kspace_volume
from volgan.degrade.thick_slices import thick_slices
from volgan.io import Volume, read_nifti
from volgan.metrics import psnr, relative_sharpness, ssim


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


def crop_region(mask: np.ndarray, size: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    """``size`` voxels around the centre of ``mask`` (the whole axis where it is shorter)."""
    idx = np.argwhere(mask)
    centre = (idx.min(0) + idx.max(0)) // 2
    starts = [int(np.clip(c - s // 2, 0, max(n - s, 0))) for c, s, n in zip(centre, size, mask.shape)]
    return tuple(slice(a, a + min(s, n)) for a, s, n in zip(starts, size, mask.shape))  # type: ignore[return-value]


def crop(volume: Volume, start: np.ndarray, stop: np.ndarray) -> Volume:
    """Voxels ``start .. stop - 1`` of ``volume``, with the matching affine."""
    index = tuple(slice(int(a), int(b)) for a, b in zip(start, stop))
    affine = volume.affine.copy()
    affine[:3, 3] = volume.affine[:3, :3] @ np.asarray(start, dtype=float) + volume.affine[:3, 3]
    return volume.with_array(np.ascontiguousarray(volume.array[index]), affine=affine)


def input_with_margin(volume: Volume, region: tuple[slice, ...], factor: np.ndarray, margin: int
                      ) -> tuple[Volume, tuple[slice, ...]]:
    """``volume`` (``factor`` thin voxels per voxel) cut to ``region`` (thin voxels) plus ``margin``
    thin voxels, on whole voxels; and where ``region`` lies in the thin grid that covers the cut."""
    start = np.maximum((np.array([r.start for r in region]) - margin) // factor, 0)
    stop = np.minimum(-(-(np.array([r.stop for r in region]) + margin) // factor), volume.shape)
    inside = tuple(slice(r.start - s * f, r.stop - s * f) for r, s, f in zip(region, start, factor))
    return crop(volume, start, stop), inside


def scores(pred: np.ndarray, clean: np.ndarray, masks: dict[str, np.ndarray], peak: float) -> dict[str, float]:
    out = {}
    for name, mask in masks.items():
        out[f"psnr_{name}"] = round(psnr(pred, clean, data_range=peak, mask=mask), 3)
        out[f"ssim_{name}"] = round(ssim(pred, clean, data_range=peak, mask=mask), 4)
    out["sharpness_brain"] = round(relative_sharpness(pred, clean, mask=masks["brain"]), 3)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="data/heldout_mr/colin27_1mm", help="held-out set folder with set.json")
    parser.add_argument("--bundle", default="bundles/mri_sr_mdcsrn")
    parser.add_argument("--weights", nargs="*", default=[], help="NAME=PATH generator weights (default: the bundle's)")
    parser.add_argument("--thickness", type=int, nargs="*", default=[3, 4, 5, 6], help="slice thickness, thin voxels")
    parser.add_argument("--axis", type=int, default=2, help="thick-slice axis")
    parser.add_argument("--kspace-factor", type=float, nargs="*", default=[2.0], help="per-axis k-space reduction")
    parser.add_argument("--crop", type=int, nargs=3, default=(128, 128, 96), help="0 0 0: the whole volume")
    parser.add_argument("--margin", type=int, default=12, help="thin voxels of input around the scored region")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder, bundle = Path(args.set), Path(args.bundle)
    meta = json.loads((folder / "set.json").read_text())
    clean_volume = read_nifti(folder / meta["clean"])
    brain = read_nifti(folder / meta["brain_mask"]).array > 0
    head = read_nifti(folder / meta["head_mask"]).array > 0
    region = crop_region(brain, tuple(args.crop) if any(args.crop) else clean_volume.shape)
    clean = clean_volume.array[region]
    masks = {"head": head[region], "brain": brain[region]}
    peak = float(clean_volume.array.max())
    spacing = [float(v) for v in clean_volume.spacing]
    weights = dict(w.split("=", 1) for w in args.weights) or {"bundle": None}
    rows = []

    def add(degradation: str, method: str, pred: np.ndarray, seconds: float | None = None) -> None:
        if pred.shape != clean.shape:
            raise RuntimeError(f"{degradation} / {method}: output {pred.shape}, expected {clean.shape}")
        row = {"degradation": degradation, "method": method, **scores(pred, clean, masks, peak)}
        if seconds is not None:
            row["seconds"] = round(seconds, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)

    def networks(degradation: str, mode: str, volume: Volume, inside: tuple[slice, ...]) -> None:
        for name, path in weights.items():
            predictor = bundle_sr_predictor(bundle, mode, spacing, path)
            t0 = time.perf_counter()
            out = predictor.predict(volume)
            add(degradation, name, out.array[inside], time.perf_counter() - t0)

    for factor in args.kspace_factor:
        truncated = truncate_kspace_volume(clean_volume, 1.0 / factor, axes=(0, 1))
        volume, inside = input_with_margin(truncated, region, np.ones(3, int), args.margin)
        name = f"kspace {factor:g}x{factor:g}"
        add(name, "input as is", volume.array[inside])
        networks(name, "kspace", volume, inside)
    for n in args.thickness:
        factor = np.ones(3, int)
        factor[args.axis] = n
        thick, inside = input_with_margin(thick_slices(clean_volume, n, axis=args.axis), region, factor, args.margin)
        name = f"thick {n * spacing[args.axis]:g} mm"
        for interpolation in ("nearest", "linear", "cubic"):
            add(name, interpolation, resample_to_target(thick, spacing, interpolation).array[inside])
        networks(name, "thick", thick, inside)

    result = {"test_set": str(folder), "source": meta.get("source"), "region": [[r.start, r.stop] for r in region],
              "data_range": peak, "target_spacing": spacing, "axis": args.axis, "threads": args.threads,
              "weights": dict(weights), "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
