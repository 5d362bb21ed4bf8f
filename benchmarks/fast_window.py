"""Where one fast-mode window's time goes: convolutions, element-wise C passes, the rest.

Builds the bundle network's fast-mode predictor, runs one window of the benchmark plan's size
(192x224x192 volume -> 104x120x104 windows with the bundles' settings) once to set it up, then
``--repeats`` more times, and prints each pass's seconds split into oneDNN convolution calls
(``PointwiseConv3d``, the depth-paired ones included), the BatchNorm + ELU passes (``AffineELU``
and, where it exists, ``dense_parts.affine_elu_parts``), the gathering of dense-block parts, and
the rest; medians last. The accounting hooks cost a few microseconds per call. It runs at any
commit since session 14, so two commits can be compared on the same machine.

Usage: python benchmarks/fast_window.py [--bundle bundles/mri_sr_mdcsrn] [--shape 192 224 192] [--repeats 5]
"""

from __future__ import annotations

import argparse
import collections
import importlib
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _timed(owner, name: str, label: str, totals: collections.Counter) -> None:
    """Replace ``owner.name`` by a wrapper adding its seconds to ``totals[label]``."""
    run = getattr(owner, name)

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return run(*args, **kwargs)
        finally:
            totals[label] += time.perf_counter() - start

    setattr(owner, name, timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=str(ROOT / "bundles" / "mri_sr_mdcsrn"))
    ap.add_argument("--shape", nargs=3, type=int, default=[192, 224, 192])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    import torch

    from benchmarks.inference import _network, bundle_predictor
    from volgan.inference.cpu.fused_pointwise import PointwiseConv3d
    from volgan.inference.cpu.norm_elu import AffineELU

    net, settings = _network(args.bundle)
    pred = bundle_predictor(net, settings, fast=True)
    totals: collections.Counter = collections.Counter()
    _timed(PointwiseConv3d, "forward", "convolutions", totals)
    _timed(AffineELU, "forward", "BatchNorm + ELU", totals)
    try:  # since session 15: dense blocks as parts
        buffered = importlib.import_module("volgan.inference.cpu.buffered_dense")
        if hasattr(buffered, "affine_elu_parts"):
            _timed(buffered, "affine_elu_parts", "BatchNorm + ELU", totals)
            _timed(buffered, "gather_parts", "gathering parts", totals)
    except ImportError:
        pass
    plan = pred.plan(tuple(args.shape))
    x = torch.rand(pred.batch_size(plan), 1, *plan.window)
    labels = ("convolutions", "BatchNorm + ELU", "gathering parts")
    rows = []
    print(f"{Path(args.bundle).name}: window {plan.window}, {pred.precision} {pred.backend}")
    with torch.inference_mode():
        pred._forward(x)  # set-up: oneDNN primitives, first-touch pages
        for _ in range(args.repeats):
            totals.clear()
            start = time.perf_counter()
            pred._forward(x)
            total = time.perf_counter() - start
            rows.append([total, *(totals[k] for k in labels), total - sum(totals[k] for k in labels)])
            print("  pass " + "  ".join(f"{name} {value:.3f}" for name, value in zip(("total", *labels, "rest"), rows[-1])))
    medians = [statistics.median(column) for column in zip(*rows)]
    print("median " + "  ".join(f"{name} {value:.3f} s" for name, value in zip(("total", *labels, "rest"), medians)))


if __name__ == "__main__":
    main()
