"""Accelerator memory of whole-volume inference against the volume size (needs a CUDA device).

For each bundle network and each mode (fp32 default grid, fast), runs volgan's Predictor on CUDA
over random volumes of growing size and prints the peak device memory
(``torch.cuda.max_memory_allocated``) and its ratio to the smallest volume's. Windows are moved
to the device batch by batch and the stitching buffer stays on the host, so the ratio should stay
near 1 once the volume is larger than a window (fast mode's windows grow with the volume up to
``max_window``, so compare its sizes beyond that). Peak host RSS is printed alongside.

Usage: python benchmarks/device_memory.py [--bundles B ...] [--sizes 96 192 320 512]
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", nargs="+",
                    default=[str(ROOT / "bundles" / b) for b in ("mri_denoise_redwgan", "mri_sr_mdcsrn", "pet_lowdose_cgan")])
    ap.add_argument("--sizes", nargs="+", type=int, default=[96, 192, 320, 512])
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing measured")
        return
    from inference import _network  # benchmarks/inference.py: the bundle's network and settings

    from volgan.inference import Predictor

    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print("| network | mode | volume | peak device MB | x smallest | peak host RSS GB |")
    print("|---|---|---|---|---|---|")
    for bundle in args.bundles:
        net, settings = _network(bundle)
        for fast in (False, True):
            pred = Predictor(net, roi_size=settings["roi_size"], sw_batch_size=settings["sw_batch_size"],
                             overlap=settings["overlap"], max_window=settings["max_window"], device="cuda", fast=fast)
            first = None
            for size in args.sizes:
                volume = np.random.default_rng(0).random((size,) * 3, dtype=np.float32)
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                pred.predict_array(volume)
                torch.cuda.synchronize()
                peak = torch.cuda.max_memory_allocated() / 2**20
                first = first or peak
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
                print(f"| {Path(bundle).name} | {'fast' if fast else 'fp32'} ({pred.precision}) | {size}^3 | {peak:.0f} | "
                      f"{peak / first:.2f} | {rss:.2f} |", flush=True)


if __name__ == "__main__":
    main()
