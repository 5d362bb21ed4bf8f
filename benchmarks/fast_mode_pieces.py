"""What each CPU rewrite of the PyTorch path gains, per bundle, on a whole volume.

For each bundle, in one process: the predictor as shipped with ``backend="torch"`` (the form
that runs where no native form does: no C compiler, a network volgan has no native form for)
in fast mode and in default mode, and the same predictor with one rewrite of
:func:`volgan.inference.cpu.build_forward` turned off at a time:

* ``subpixel``: transposed convolutions as sub-pixel convolutions (:mod:`~volgan.inference.cpu.subpixel`);
* ``fused``: convolutions fused with what follows them (:mod:`~volgan.inference.cpu.fused_pointwise`);
* ``split-cat``: concatenations before 1x1x1 convolutions as sums (:mod:`~volgan.inference.cpu.concat_pointwise`);
* ``dense-buffer``: mDCSRN's dense blocks from parts (:mod:`~volgan.inference.cpu.buffered_dense`);
* ``bn-elu``: BatchNorm + ELU in one C pass (:mod:`~volgan.inference.cpu.norm_elu`).

A rewrite that changes nothing for a bundle and mode (the report shows it off) is not timed
there. The variants alternate ``--repeats`` times over the volume; the table gives each one's
median and ``gain`` = time without the rewrite / time with it (1.05 = the rewrite saves 5 %), and
the largest output difference against the shipped form (relative to the input range).

Usage: python benchmarks/fast_mode_pieces.py [--bundles ...] [--shape 160 192 160] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUNDLES = ("pet_lowdose_cgan", "mri_sr_mdcsrn", "mri_denoise_redwgan")


def _identity(network, *args, **kwargs):
    return network


# rewrite -> (report attribute that says it ran, {name in volgan.inference.cpu: replacement that skips it})
PIECES: dict[str, tuple[str, dict[str, Callable]]] = {
    "subpixel": ("subpixel", {"subpixel_transposed_convolutions": lambda network: (network, 0)}),
    "fused": ("fused", {"fuse_pointwise": _identity, "fold_batchnorm_after_add": _identity}),
    "split-cat": ("split_concat", {"split_concat_pointwise": _identity}),
    "dense-buffer": ("buffered_dense", {"buffer_dense_blocks": _identity}),
    "bn-elu": ("norm_elu", {"fuse_norm_elu": _identity}),
}


@contextmanager
def without(piece: str) -> Iterator[None]:
    """``build_forward`` with one rewrite turned off while the block runs."""
    import volgan.inference.cpu as accelerator

    shipped = {name: getattr(accelerator, name) for name in PIECES[piece][1]}
    for name, replacement in PIECES[piece][1].items():
        setattr(accelerator, name, replacement)
    try:
        yield
    finally:
        for name, function in shipped.items():
            setattr(accelerator, name, function)


def measure(bundle: str, fast: bool, volume: np.ndarray, repeats: int) -> list[str]:
    """Table rows for one bundle and mode."""
    from benchmarks.inference import _network, bundle_predictor

    net, settings = _network(str(ROOT / "bundles" / bundle))
    shipped = bundle_predictor(net, settings, fast=fast, backend="torch")
    variants = {"shipped": shipped}
    for piece, (flag, _) in PIECES.items():
        if getattr(shipped, flag):
            with without(piece):
                variants[f"no {piece}"] = bundle_predictor(net, settings, fast=fast, backend="torch")
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, pred in variants.items():
            start = time.perf_counter()
            outputs[name] = pred.predict_array(volume)
            seconds[name].append(time.perf_counter() - start)
    base = statistics.median(seconds["shipped"])
    data_range = float(volume.max() - volume.min())
    mode = "fast" if fast else "default"
    rows = []
    for name, runs in seconds.items():
        median = statistics.median(runs)
        diff = float(np.abs(outputs[name] - outputs["shipped"]).max()) / data_range
        rows.append(f"| {bundle} | {mode} {shipped.precision} | {name} | {median:.2f} | {median / base:.3f} | {diff:.1e} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", nargs="+", default=list(BUNDLES), choices=BUNDLES)
    ap.add_argument("--modes", nargs="+", default=["fast", "default"], choices=["fast", "default"])
    ap.add_argument("--shape", nargs=3, type=int, default=[160, 192, 160])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    from benchmarks.inference import benchmark_volume
    from volgan.hardware import cpu_has_fast_bf16

    volume = benchmark_volume(args.shape)
    print(f"CPU with native bf16: {cpu_has_fast_bf16()}, {torch.get_num_threads()} threads, volume {tuple(args.shape)}, "
          f"medians of {args.repeats}")
    print("| bundle | mode | variant | median s | gain | max diff / range |")
    print("|---|---|---|---|---|---|")
    for bundle in args.bundles:
        for mode in args.modes:
            for row in measure(bundle, mode == "fast", volume, args.repeats):
                print(row, flush=True)


if __name__ == "__main__":
    main()
