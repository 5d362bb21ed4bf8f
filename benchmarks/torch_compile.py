"""``torch.compile`` against eager PyTorch and volgan's fast mode, one fast-mode window per pass.

For each bundle network, in one process: the fast-mode window for a 192x224x192 volume (the
whole volume for the PET bundle) run by volgan's fast-mode network (``Predictor(fast=True)``),
by the plain network in eager PyTorch under bf16 autocast, channels-last 3D (what fast mode
would be without volgan's rewrites), and by the same plain network compiled by inductor
(``torch._inductor.config.freezing = True``: weights folded as constants; compilation time
printed apart). The variants alternate, ``--repeats`` times each; medians and their ratios to
the eager plain network are printed, and the compiled output's largest difference from volgan's.

Usage: python benchmarks/torch_compile.py [--bundles B ...] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _autocast_bf16(network: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return network(x)


def measure(bundle: str, repeats: int) -> None:
    import torch._inductor.config as inductor_config

    from benchmarks.inference import _network
    from volgan.inference import Predictor

    net, settings = _network(bundle)
    pred = Predictor(net, roi_size=settings["roi_size"], max_window=settings["max_window"], device="cpu", fast=True,
                     fp32_share=settings["fp32_share"])
    x = torch.rand(1, 1, *pred.plan((192, 224, 192)).window).contiguous(memory_format=torch.channels_last_3d)
    plain = copy.deepcopy(net).eval().to(memory_format=torch.channels_last_3d)
    inductor_config.freezing = True
    with torch.inference_mode():
        reference = pred._forward(x).float()
        start = time.perf_counter()
        compiled = torch.compile(plain)
        difference = (_autocast_bf16(compiled, x).float() - reference).abs().max().item()
        data_range = float(reference.max() - reference.min())
        print(f"{Path(bundle).name}: window {tuple(x.shape[2:])}, compilation {time.perf_counter() - start:.1f} s, "
              f"compiled output up to {difference:.3g} from volgan's (range {data_range:.3g})")
        variants = {"volgan fast": lambda: pred._forward(x), "plain eager": lambda: _autocast_bf16(plain, x),
                    "plain compiled": lambda: _autocast_bf16(compiled, x)}
        seconds = {name: [] for name in variants}
        for _ in range(repeats):
            for name, run in variants.items():
                t = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - t)
    eager = statistics.median(seconds["plain eager"])
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"  {name:15s} {median:7.3f} s (runs {' '.join(f'{v:.3f}' for v in values)}), "
              f"{eager / median:.2f}x plain eager")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", nargs="+", default=[str(ROOT / "bundles" / b) for b in
                                                     ("mri_sr_mdcsrn", "pet_lowdose_cgan", "mri_denoise_redwgan")])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for bundle in args.bundles:
        measure(bundle, args.repeats)


if __name__ == "__main__":
    main()
