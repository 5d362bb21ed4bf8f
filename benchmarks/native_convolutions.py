"""volgan's native CPU forms with their convolutions called in oneDNN directly against ``F.conv3d``.

PyTorch's ``F.conv3d`` dispatch runs a batch-1 float32 input with ``N * C * D * H <= 20480`` (and a
kernel of at most 3) in its own reference convolution instead of oneDNN. That is the first,
one-channel layer of mDCSRN and RED-WGAN on a 64^3 window (the default fp32 mode) and on fast
mode's 104x120x104 windows, and the PET U-Net's decoder and head on a single 64^3 window
(``sw_batch_size: 1``, or the last window of an odd count). The native forms
(:mod:`volgan.inference.cpu.native`) call oneDNN's fused convolutions instead
(:func:`volgan.inference.cpu.fused_pointwise.fp32_convolution`).

In one process, each bundle's generator in its native form built both ways, ``fused`` (as
shipped where PyTorch has oneDNN's fused convolutions) and ``plain`` (``F.conv3d`` then the
activation in place: what ran before), alternating ``--repeats`` times on each input: 64^3
windows one, two and eight per call (PET; one per call for the MR networks), the fast-mode window
(104x120x104, MR) and the whole benchmark volume (192x224x192, PET's fast-mode window). Medians
per window, their ratio (plain / fused) and the largest difference of the outputs relative to
their range; for the MR networks also their first layer alone (the one that changed).

Usage: python benchmarks/native_convolutions.py [--bundles pet_lowdose_cgan mri_sr_mdcsrn mri_denoise_redwgan] [--repeats 7]
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


def forms(bundle: str, net: torch.nn.Module) -> dict:
    """The bundle network's native form with and without oneDNN's fused convolutions."""
    from volgan.inference.cpu.native_dense import NativeMdcsrn
    from volgan.inference.cpu.native_kernels import load_library
    from volgan.inference.cpu.native_red_wgan import NativeRedWgan
    from volgan.inference.cpu.native_unet import NativePetUNet

    if bundle == "pet_lowdose_cgan":
        return {fused: NativePetUNet(net, fused=fused) for fused in (False, True)}
    library = load_library()
    if library is None:
        sys.exit(f"{bundle}: its native form needs volgan's C kernels (no C compiler?)")
    form = NativeMdcsrn if bundle == "mri_sr_mdcsrn" else NativeRedWgan
    return {fused: form(net, library, fused=fused) for fused in (False, True)}


def inputs(bundle: str) -> dict[str, torch.Tensor]:
    from benchmarks.inference import benchmark_volume
    from volgan.data.normalise import PercentileScaler

    generator = torch.Generator().manual_seed(0)
    if bundle != "pet_lowdose_cgan":
        return {"64^3 x 1": torch.rand(1, 1, 64, 64, 64, generator=generator),
                "104x120x104 x 1": torch.rand(1, 1, 104, 120, 104, generator=generator)}
    windows = {f"64^3 x {n}": torch.rand(n, 1, 64, 64, 64, generator=generator) for n in (1, 2, 8)}
    volume = benchmark_volume((192, 224, 192))
    return {**windows, "192x224x192 x 1": torch.from_numpy(PercentileScaler().fit(volume).apply(volume))[None, None]}


def _seconds(run, repeats: int) -> list[float]:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", nargs="+", default=["pet_lowdose_cgan", "mri_sr_mdcsrn", "mri_denoise_redwgan"])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    from benchmarks.inference import _network
    from volgan.inference.cpu.allocator import keep_freed_memory
    from volgan.inference.cpu.fused_pointwise import channels_last_3d, fused_pointwise_available

    if not fused_pointwise_available(torch.float32):
        sys.exit("this PyTorch has no oneDNN fused convolutions: nothing to compare")
    keep_freed_memory()  # as the Predictor does on the CPU
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms per window, medians of {args.repeats}")
    print("| network | input | plain ms | fused ms | plain / fused | max diff / range |")
    print("|---|---|---|---|---|---|")
    for bundle in args.bundles:
        net, _ = _network(str(ROOT / "bundles" / bundle))
        both = forms(bundle, net)
        for name, x in inputs(bundle).items():
            with torch.inference_mode():
                outputs = {fused: form(x) for fused, form in both.items()}  # also warms both up
            ref = outputs[False]
            diff = float((outputs[True] - ref).abs().max() / (ref.max() - ref.min()))
            times: dict[bool, list[float]] = {fused: [] for fused in both}
            for _ in range(args.repeats):
                for fused, form in both.items():
                    start = time.perf_counter()
                    form(x)
                    times[fused].append((time.perf_counter() - start) / x.shape[0])
            plain, fused = statistics.median(times[False]), statistics.median(times[True])
            print(f"| {bundle} | {name} | {1e3 * plain:.1f} | {1e3 * fused:.1f} | {plain / fused:.2f} | {diff:.1e} |",
                  flush=True)
            if bundle != "pet_lowdose_cgan":  # the layer that changed, alone
                first = {fused: lambda form=form: form.first(channels_last_3d(x)) for fused, form in both.items()}
                plain, fused = (statistics.median(_seconds(first[key], args.repeats)) for key in (False, True))
                print(f"| {bundle} | {name}, first layer alone | {1e3 * plain:.1f} | {1e3 * fused:.1f} | "
                      f"{plain / fused:.2f} | - |", flush=True)


if __name__ == "__main__":
    main()
