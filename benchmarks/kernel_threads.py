"""volgan's C kernels on PyTorch's OpenMP threads against Python threads (``volgan.inference.cpu.native_kernels``).

In one process, for each bundle network: a predictor in fast mode (on an AVX-512 BF16 CPU: bf16
in PyTorch with the BatchNorm + ELU C pass, mDCSRN) and one in the default fp32 mode (the native
depth-Winograd form of mDCSRN and RED-WGAN, whose transforms are C passes). Each runs over a crop
of the benchmark volume, alternating between the kernels' two ways of running in parallel:
OpenMP loops on the runtime PyTorch's convolutions use (as shipped, when the kernels build with
``-fopenmp``) and the same jobs split between ``torch.get_num_threads()`` Python threads, each
running its share serially. ``--repeats`` runs each; medians, their ratio (Python threads /
OpenMP) and the largest difference of the two outputs (which should be 0) are printed.

Usage: python benchmarks/kernel_threads.py [--bundles mri_sr_mdcsrn mri_denoise_redwgan] [--crop 128 128 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", nargs="+", default=["mri_sr_mdcsrn", "mri_denoise_redwgan"])
    ap.add_argument("--crop", nargs=3, type=int, default=[128, 128, 128])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import volgan.inference.cpu.native_kernels as kernels
    from benchmarks.inference import _network, benchmark_volume, bundle_predictor, precision_label

    library = kernels.load_library()
    if library is None or not library.openmp_jobs:
        sys.exit("the kernels do not run on OpenMP threads here (no C compiler, no -fopenmp, or a second runtime)")
    shipped = kernels.kernels_use_openmp
    volume = benchmark_volume(args.crop)
    print(f"crop {args.crop}, {args.repeats} runs each, alternating")
    print("| network | mode | precision / backend | OpenMP s | Python threads s | ratio | max diff |")
    print("|---|---|---|---|---|---|---|")
    for bundle in args.bundles:
        net, settings = _network(str(ROOT / "bundles" / bundle))
        for fast in (True, False):
            pred = bundle_predictor(net, settings, fast=fast)
            if not (pred.norm_elu or pred.backend == "native"):
                continue  # no C pass in this mode
            seconds, outputs = {True: [], False: []}, {}
            pred.predict_array(volume)  # first calls (oneDNN set-up, page faults) left out
            try:
                for _ in range(args.repeats):
                    for openmp in (True, False):
                        library.volgan_set_threads(1)  # the Python-thread way: serial calls (run_jobs sets it otherwise)
                        kernels.kernels_use_openmp = lambda openmp=openmp: openmp
                        start = time.perf_counter()
                        outputs[openmp] = pred.predict_array(volume)
                        seconds[openmp].append(time.perf_counter() - start)
            finally:
                kernels.kernels_use_openmp = shipped
            omp, threads = statistics.median(seconds[True]), statistics.median(seconds[False])
            diff = float(np.abs(outputs[True] - outputs[False]).max())
            print(f"| {bundle} | {'fast' if fast else 'fp32'} | {precision_label(pred)} | {omp:.2f} | {threads:.2f} | {threads / omp:.2f} | {diff:.1e} |",
                  flush=True)


if __name__ == "__main__":
    main()
