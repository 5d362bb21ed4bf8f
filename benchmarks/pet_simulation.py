"""Low-dose PET simulation time for a 1 mm brain, with the noise and recovery it gives.

Phantom: FDG-like activity from nilearn's MNI152 2009a tissue maps (1 mm, 197x233x189), grey
matter 4, white matter 1, CSF 0.05 (CSF = filled brain mask minus GM and WM). Times
:func:`volgan.degrade.simulate_doses` for a full-dose reference and three low doses (all reconstructed),
stage by stage (projector build, acquisition, Poisson draws, sensitivities, OSEM per dose), and
gives the total in units of one projection of the volume measured in the same run. Then prints, per
dose, the mean in grey and white matter (truth 4 and 1, before the scanner's blur) and the noise:
the coefficient of variation in deep white matter, which should grow like ``1/sqrt(dose)``.

Usage: python benchmarks/pet_simulation.py [--doses 1 0.25 0.1 0.05] [--iterations 4] [--subsets 12]
       [--workers 1] [--counts 1e8] [--post-fwhm MM] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data_scripts"))
from sources import mni152  # noqa: E402

from volgan.degrade.pet import PetScanner, gaussian_blur_mm  # noqa: E402
from volgan.degrade.pet_osem import subset_sensitivities  # noqa: E402
from volgan.degrade.pet_projector import parallel_projector  # noqa: E402


def brain_phantom() -> tuple[np.ndarray, tuple[float, float, float], np.ndarray, np.ndarray]:
    """Activity (GM 4, WM 1, CSF 0.05), spacing, and masks of pure grey and deep white matter."""
    images = [nib.load(mni152(kind)) for kind in ("t1", "gm", "wm")]
    t1, gm, wm = (np.asarray(img.dataobj, dtype=np.float32) for img in images)
    gm, wm = gm / gm.max(), wm / wm.max()
    brain = ndimage.binary_fill_holes(t1 > 0)
    csf = np.clip(brain - gm - wm, 0, 1)
    activity = (4.0 * gm + 1.0 * wm + 0.05 * csf).astype(np.float32)
    spacing = tuple(float(s) for s in images[0].header.get_zooms()[:3])
    deep_wm = ndimage.binary_erosion(wm > 0.95, iterations=3)
    return activity, spacing, gm > 0.9, deep_wm


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--doses", type=float, nargs="+", default=[1.0, 0.25, 0.1, 0.05])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--subsets", type=int, default=12)
    parser.add_argument("--workers", type=int, default=1, help="projector threads")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (unused by the simulator)")
    parser.add_argument("--counts", type=float, default=1e8)
    parser.add_argument("--post-fwhm", type=float, default=None)
    parser.add_argument("--model-psf", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    activity, spacing, gm, deep_wm = brain_phantom()
    scanner = PetScanner(activity.shape, spacing, workers=args.workers)
    print(f"volume {activity.shape} at {spacing} mm; {scanner.views} views x bins of {scanner.radial_bin_mm:g} mm; "
          f"{args.iterations} iterations x {args.subsets} subsets; {args.counts:.0e} prompts at full dose; "
          f"{args.workers} projector thread(s); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    times: dict[str, float] = {}
    start = time.perf_counter()
    parallel_projector.cache_clear()
    projector = scanner.projector(args.subsets)
    times["projector build"] = time.perf_counter() - start
    print(f"projector: {projector.n_bins} bins, {projector.nnz / 1e6:.1f} M non-zeros")

    tick = time.perf_counter()
    one_projection = projector.forward(activity)
    times["one projection (reference)"] = per_projection = time.perf_counter() - tick
    tick = time.perf_counter()
    projector.back(one_projection)
    times["one back projection (reference)"] = time.perf_counter() - tick

    tick = time.perf_counter()
    data = scanner.acquire(activity, total_counts=args.counts, projector=projector)
    times["acquire (blur, mu, projections, scatter)"] = time.perf_counter() - tick
    tick = time.perf_counter()
    prompts = data.sample(args.doses, seed=0)
    times["Poisson + thinning"] = time.perf_counter() - tick
    psf = scanner.blur if args.model_psf else None
    tick = time.perf_counter()
    sens = subset_sensitivities(projector, data.attenuation, psf)
    times["sensitivities"] = time.perf_counter() - tick
    recons = {}
    for dose in args.doses:
        tick = time.perf_counter()
        recons[dose] = scanner.reconstruct(prompts[dose], data, dose=dose, iterations=args.iterations,
                                           post_fwhm_mm=args.post_fwhm, model_psf=args.model_psf, sensitivities=sens)
        times[f"OSEM dose {dose:g}"] = time.perf_counter() - tick
    total = time.perf_counter() - start - times["one projection (reference)"] - times["one back projection (reference)"]

    for name, seconds in times.items():
        print(f"  {name:42s} {seconds:7.2f} s")
    print(f"total simulate ({len(args.doses)} doses, projector build included): {total:.1f} s "
          f"= {total / per_projection:.0f} projections of the volume ({per_projection:.2f} s each)")
    print(f"prompts at full dose: {float(prompts[max(args.doses)].sum()):.4g} (expected "
          f"{args.counts * max(args.doses):.4g}); scale {data.scale:.4g} counts per activity.mm")

    blurred = gaussian_blur_mm(activity, scanner.fwhm_mm, spacing)
    print(f"blurred truth: GM {blurred[gm].mean():.3f}, WM {blurred[deep_wm].mean():.3f}")
    for dose, image in recons.items():
        wm_values = image[deep_wm]
        print(f"dose {dose:5.3f}: GM mean {image[gm].mean():.3f}, deep WM mean {wm_values.mean():.3f}, "
              f"WM CV {wm_values.std() / wm_values.mean():.3f}, "
              f"CV x sqrt(dose) {wm_values.std() / wm_values.mean() * np.sqrt(dose):.3f}")


if __name__ == "__main__":
    main()
