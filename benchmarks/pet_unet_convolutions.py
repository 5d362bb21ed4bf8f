"""The native PET U-Net's convolutions through oneDNN's fused convolutions against ``F.conv3d``.

In one process, the PET bundle's generator in its native CPU form (:mod:`volgan.inference.native_unet`)
built both ways: ``fused`` (as shipped where PyTorch has them: each convolution one
``torch.ops.mkldnn._convolution_pointwise`` call with its activation as a post-op) and ``plain``
(``F.conv3d``, then the activation in place: what runs without them, and what ran before).
PyTorch's ``F.conv3d`` dispatch sends a batch-1 input with ``N * C * D * H <= 20480`` to its own
reference convolution instead of oneDNN: the decoder and head of a single 64^3 window, which is
what the default fp32 mode runs for ``sw_batch_size: 1`` and for the last window of an odd count.

Inputs: 64^3 windows one, two and eight per call (the default mode's windows), and the benchmark
volume (192x224x192 MNI152 T1 with 5 % Rician noise, percentile-normalised) whole (fast mode's
one window). The two forms alternate ``--repeats`` times per input; medians per window, their
ratio (plain / fused) and the largest difference of the outputs relative to their range.

Usage: python benchmarks/pet_unet_convolutions.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    from benchmarks.inference import _network, benchmark_volume
    from volgan.data.normalise import PercentileScaler
    from volgan.inference.allocator import keep_freed_memory
    from volgan.inference.fused_pointwise import fused_pointwise_available
    from volgan.inference.native_unet import NativePetUNet

    if not fused_pointwise_available(torch.float32):
        sys.exit("this PyTorch has no oneDNN fused convolutions: nothing to compare")
    keep_freed_memory()  # as the Predictor does on the CPU
    net, _ = _network(str(ROOT / "bundles" / "pet_lowdose_cgan"))
    forms = {"fused": NativePetUNet(net, fused=True), "plain": NativePetUNet(net, fused=False)}
    volume = benchmark_volume((192, 224, 192))
    whole = torch.from_numpy(PercentileScaler().fit(volume).apply(volume))[None, None]
    generator = torch.Generator().manual_seed(0)
    inputs = {f"64^3 x {n}": torch.rand(n, 1, 64, 64, 64, generator=generator) for n in (1, 2, 8)}
    inputs["192x224x192 whole"] = whole
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms per window, medians of {args.repeats}")
    print("| input | plain ms | fused ms | plain / fused | max diff / range |")
    print("|---|---|---|---|---|")
    for name, x in inputs.items():
        outputs = {k: form(x) for k, form in forms.items()}  # also warms both up
        ref = outputs["plain"]
        diff = float((outputs["fused"] - ref).abs().max() / (ref.max() - ref.min()))
        times: dict[str, list[float]] = {k: [] for k in forms}
        for _ in range(args.repeats):
            for key, form in forms.items():
                start = time.perf_counter()
                form(x)
                times[key].append((time.perf_counter() - start) / x.shape[0])
        plain, fused = statistics.median(times["plain"]), statistics.median(times["fused"])
        print(f"| {name} | {1e3 * plain:.1f} | {1e3 * fused:.1f} | {plain / fused:.2f} | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
