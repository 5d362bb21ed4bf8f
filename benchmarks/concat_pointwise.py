"""mDCSRN's fast mode with and without the split reconstruction (``volgan.inference.cpu.concat_pointwise``).

In one process: two fast-mode predictors of the bundle's network, one as shipped and one with
:func:`~volgan.inference.cpu.concat_pointwise.split_concat_pointwise` turned off (the reconstruction
then concatenates the five levels and runs one 1x1x1 convolution on them). They alternate over
a crop of the benchmark volume (one fast-mode window of ``--crop``), ``--repeats`` times each;
medians, their ratio and the largest difference of the two outputs are printed.

Usage: python benchmarks/concat_pointwise.py [--bundle bundles/mri_sr_mdcsrn] [--crop 128 128 128] [--repeats 4]
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
    ap.add_argument("--bundle", default=str(ROOT / "bundles" / "mri_sr_mdcsrn"))
    ap.add_argument("--crop", nargs=3, type=int, default=[128, 128, 128])
    ap.add_argument("--repeats", type=int, default=4)
    args = ap.parse_args()

    import volgan.inference.cpu as predictor
    from benchmarks.inference import _network, benchmark_volume, bundle_predictor

    net, settings = _network(args.bundle)
    volume = benchmark_volume(args.crop)
    split = bundle_predictor(net, settings, fast=True)
    shipped = predictor.split_concat_pointwise
    predictor.split_concat_pointwise = lambda network, dtype, keep=(): network
    try:
        concatenated = bundle_predictor(net, settings, fast=True)
    finally:
        predictor.split_concat_pointwise = shipped
    if not split.split_concat:
        sys.exit(f"{args.bundle}: fast mode has no concatenation to split here ({split.precision} {split.backend})")
    print(f"{Path(args.bundle).name}: {split.precision} {split.backend}, window {split.plan(volume.shape).window}")
    seconds: dict[str, list[float]] = {"split": [], "concatenated": []}
    outputs = {}
    for _ in range(args.repeats):
        for name, pred in (("split", split), ("concatenated", concatenated)):
            start = time.perf_counter()
            outputs[name] = pred.predict_array(volume)
            seconds[name].append(time.perf_counter() - start)
    for name, runs in seconds.items():
        print(f"  {name:13s} median {statistics.median(runs):.3f} s  runs {' / '.join(f'{s:.3f}' for s in runs)}")
    ratio = statistics.median(seconds["concatenated"]) / statistics.median(seconds["split"])
    data_range = float(volume.max() - volume.min())
    diff = float(np.abs(outputs["split"] - outputs["concatenated"]).max())
    print(f"  split is {ratio:.3f}x the concatenated form; outputs differ by {diff / data_range:.2e} of the input range")


if __name__ == "__main__":
    main()
