"""Whole-volume inference speed and memory: volgan's predictor against plain MONAI sliding windows.

For each bundle network, on one volume (default 192x224x192: the MNI152 T1 with 5 % Rician noise),
each mode runs in a fresh process (so peak resident memory is per mode), modes interleaved and
repeated; the table shows medians:

* ``baseline``: ``monai.inferers.SlidingWindowInferer(roi_size=<bundle ROI>, sw_batch_size=1,
  overlap=0.25, mode="gaussian")``, fp32, ``torch.no_grad()``, default memory format;
* ``fp32``: volgan's Predictor with the bundle's settings (the default, quantitative mode; on the
  CPU in the form the accelerator picks, :func:`volgan.inference.cpu.build_forward`);
* ``fast``: volgan's Predictor with ``fast=True``;
* extras (``--extras fp32-torch fast-torch compile baseline-keepmem``): fp32 and fast mode with
  the PyTorch backend (no native form), fast mode with
  ``torch.compile`` (compilation time reported apart), and the baseline with the host allocator
  setting the Predictor makes on the CPU (:mod:`volgan.inference.cpu.allocator`), which shows how
  much of a speed-up is that setting alone.

Columns: voxels/s, ratio to the baseline, effective GFLOP/s (the network's direct-convolution
FLOPs per voxel x voxels the window plan computes / seconds; the Winograd form does half of
those multiplications, so its effective rate can exceed the peak) and its share of the
machine's peak. The peak is the fastest of large fp32 and bf16, default and channels-last 3D
convolutions in PyTorch, measured at the start of the run; every worker
process measures that fastest kind again right after its timed passes. "% peak" is the median
over runs of each run's rate against its own process's peak (on a shared host the machine's
speed drifts by tens of percent between runs, and the two drift together); "% start peak" is the
median rate against the peak at the start. Then peak RSS, and the output's difference
from the baseline (max abs error / data range, PSNR of the difference), and for the bundles named
by ``--whole-volume`` the PSNR of the difference from the network run on the whole volume at once
(what windowed inference approximates; it shows how much of a mode's difference from the baseline
is the baseline's own window seams).

A memory line follows: a 512^3 float32 volume through each stitcher with a one-layer network (the
stitcher's memory does not depend on the network; activations depend on the window only), peak
RSS as a multiple of the volume's size.

A second table times fast mode's convolutions alone (every convolution call of one window,
3D, fused, and the in-plane 2D ones of the native depth Winograd, recorded and then timed by itself): the share of the peak that the network's layer shapes allow
with these convolution kernels, an upper bound for the whole pass.

With ``--warm`` each mode also runs a second time in the same process ("warm s" and its share of
the peak): what each further file of a batch costs, without first-touch page faults and one-time
kernel set-up.

Usage: python benchmarks/inference.py [--bundles B ...] [--shape 192 224 192] [--repeats 3]
       [--extras fp32-torch fast-torch compile baseline-keepmem] [--memory-shape 512 512 512] [--warm]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ----------------------------------------------------------------------------- worker side
def _bundle(bundle: str):
    from volgan.bundle import bundle_config

    return bundle_config(bundle)


def _network(bundle: str) -> tuple[torch.nn.Module, dict]:
    from volgan.inference import load_generator_weights

    parser = _bundle(bundle)
    net = parser.get_parsed_content("network_def")
    load_generator_weights(net, parser.get_parsed_content("ckpt_path"))
    settings = {k: parser.get_parsed_content(k) for k in ("roi_size", "sw_batch_size", "overlap")}
    settings["max_window"] = parser.get_parsed_content("max_window") if "max_window" in parser else (128, 128, 128)
    settings["fp32_share"] = parser.get_parsed_content("fp32_share") if "fp32_share" in parser else 0.0
    return net.eval(), settings


def bundle_predictor(net: torch.nn.Module, settings: dict, **options):
    """volgan's Predictor on the CPU with the bundle's settings (from :func:`_network`) and ``options``."""
    from volgan.inference import Predictor

    return Predictor(net, roi_size=settings["roi_size"], sw_batch_size=settings["sw_batch_size"],
                     overlap=settings["overlap"], max_window=settings["max_window"],
                     fp32_share=settings.get("fp32_share", 0.0), device="cpu", **options)


def precision_label(pred) -> str:
    """The precision, backend and rewrites a predictor runs with, as the tables show them."""
    flags = [(pred.winograd, "winograd"), (pred.subpixel, "subpixel"), (pred.fused, "fused"), (pred.norm_elu, "bn-elu"),
             (pred.buffered_dense, "dense-buffer"), (pred.split_concat, "split-cat")]
    return " ".join([pred.precision, pred.backend, *(name for on, name in flags if on)])


def _in_input_units(run, volume: np.ndarray) -> np.ndarray:
    """``run`` on the percentile-normalised ``(1, 1, D, H, W)`` volume, mapped back to input units."""
    from volgan.data.normalise import PercentileScaler

    params = PercentileScaler().fit(volume)
    with torch.no_grad():
        y = run(torch.from_numpy(params.apply(volume))[None, None])
    return params.invert(y[0, 0].numpy())


def _baseline(net, volume: np.ndarray, roi) -> np.ndarray:
    from monai.inferers import SlidingWindowInferer

    return _in_input_units(lambda x: SlidingWindowInferer(roi_size=roi, sw_batch_size=1, overlap=0.25, mode="gaussian")(x, net), volume)


def _padded(shape, roi) -> tuple[int, ...]:
    """The shape the default grid runs on: axes shorter than the window padded to it."""
    return tuple(max(int(s), int(r)) for s, r in zip(shape, roi))


def peak_rss_bytes() -> int:
    """This process's peak resident memory: ``VmHWM``, which starts afresh at ``exec`` (the
    ``ru_maxrss`` of a child process on Linux starts at its parent's peak at the fork, so a worker
    smaller than the driver would report the driver's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(args) -> None:
    volume = np.load(args.volume, mmap_mode=None)
    if args.bundle == "conv":
        net = torch.nn.Conv3d(1, 1, 3, padding=1).eval()
        settings = {"roi_size": [64] * 3, "sw_batch_size": 2, "overlap": 0.25, "max_window": (128, 128, 128)}
    else:
        net, settings = _network(args.bundle)
    rss_before = peak_rss_bytes()
    extra = {}
    start = time.perf_counter()
    if args.mode in ("baseline", "baseline-keepmem"):
        if args.mode == "baseline-keepmem":
            from volgan.inference.cpu.allocator import keep_freed_memory

            keep_freed_memory()
        out = _baseline(net, volume, settings["roi_size"])
    elif args.mode == "whole":
        out = _in_input_units(net, volume)  # the whole volume at once: what windows approximate
    else:
        fast = args.mode not in ("fp32", "fp32-torch")
        backend = {"fast-torch": "torch", "compile": "torch", "fp32-torch": "torch"}.get(args.mode, "auto")
        pred = bundle_predictor(net, settings, fast=fast, backend=backend)
        if args.mode == "compile":  # compiled for the plan's window shape; compilation reported apart
            pred.network = torch.compile(pred.network)
            t = time.perf_counter()
            with torch.inference_mode():
                pred._forward(torch.rand(1, 1, *pred.plan(volume.shape).window))
            extra["prepare_s"] = time.perf_counter() - t
            start = time.perf_counter()
        if args.mode == "fast-convs":  # the convolutions alone; no output to compare
            print(json.dumps({**convolutions_alone(pred, volume.shape), "computed_voxels": pred.plan(volume.shape).computed_voxels,
                              "peak_gflops": probe_gflops(args.peak_kind) if args.peak_kind else None}))
            return
        out = pred.predict_array(volume)
        extra["computed_voxels"] = pred.plan(volume.shape if fast else _padded(volume.shape, pred.roi_size)).computed_voxels
        extra["precision"] = precision_label(pred)
    seconds = time.perf_counter() - start
    if args.warm and args.mode != "whole":  # the same volume again in this process: what each further file of a batch costs
        start = time.perf_counter()
        out = _baseline(net, volume, settings["roi_size"]) if args.mode.startswith("baseline") else pred.predict_array(volume)
        extra["warm_seconds"] = time.perf_counter() - start
    np.save(args.out, out.astype(np.float32, copy=False))
    rss = peak_rss_bytes()
    if args.peak_kind:  # after the timed passes (which it must not warm up): this process's peak now
        extra["peak_gflops"] = probe_gflops(args.peak_kind)
    print(json.dumps({"seconds": seconds, "peak_rss": rss, "rss_before": rss_before, **extra}))


def convolutions_alone(pred, shape) -> dict:
    """Seconds the fast mode's convolutions take alone over the plan for a volume of ``shape``: every
    ``F.conv3d``, ``F.conv2d`` (the in-plane products of the native depth Winograd) and
    fused-convolution call (depth-paired ones among them) of one window's forward
    pass is recorded (inputs, weights, autocast state), then timed by itself (best of 3) and summed,
    times the plan's windows. What the network's
    layer shapes allow with these convolution kernels and nothing else: an upper bound on the
    share of the peak that any implementation built on them can reach."""
    import torch.nn.functional as F

    from volgan.inference.cpu.fused_pointwise import PointwiseConv3d

    plan = pred.plan(shape)
    calls, conv3d, conv2d = [], F.conv3d, F.conv2d

    def recorder(run):
        def recording(*args, **kwargs):
            calls.append((run, args, kwargs, torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
            return run(*args, **kwargs)
        return recording

    F.conv3d, F.conv2d = recorder(conv3d), recorder(conv2d)
    # a fused convolution is timed with its post-ops (which cost it nothing measurable), one that
    # adds into a tensor in place (the native PET U-Net's head) with that addition; patched on the
    # class, which also records those created during the pass
    fused, accumulate = PointwiseConv3d.forward, PointwiseConv3d.accumulate
    PointwiseConv3d.forward, PointwiseConv3d.accumulate = recorder(fused), recorder(accumulate)
    try:
        with torch.inference_mode():
            pred._forward(torch.rand(pred.batch_size(plan), 1, *plan.window))
    finally:
        F.conv3d, F.conv2d, PointwiseConv3d.forward, PointwiseConv3d.accumulate = conv3d, conv2d, fused, accumulate
    total = 0.0
    with torch.inference_mode():
        for run, args, kwargs, autocast, dtype in calls:
            best = float("inf")
            with torch.autocast("cpu", dtype=dtype, enabled=autocast):
                for _ in range(3):
                    t = time.perf_counter()
                    run(*args, **kwargs)
                    best = min(best, time.perf_counter() - t)
            total += best
    passes = -(-len(plan) // pred.batch_size(plan))
    return {"seconds": total * passes, "convolutions": len(calls)}


# ----------------------------------------------------------------------------- driver side
PEAK_SHAPE = (4, 64, 32, 32, 32)  # the probe: a 64 -> 64 3x3x3 convolution on 4 x 32^3 voxels


def probe_gflops(kind: str) -> float:
    """GFLOP/s of the probe convolution in ``kind`` ("float32 NCDHW", "bfloat16 channels-last",
    ...): the best of a first run and three more (one if the first took > 5 s).

    Freed memory is kept for reuse first (:mod:`volgan.inference.cpu.allocator`): otherwise every run's
    33 MB output is a fresh mapping whose page faults (about 0.25 ms per MB here) count as
    convolution time, which understated this peak by 20-40 % on a 2-core AVX2 VM."""
    from volgan.inference.cpu.allocator import keep_freed_memory

    keep_freed_memory()
    x = torch.rand(*PEAK_SHAPE)
    conv = torch.nn.Conv3d(64, 64, 3, padding=1)
    flops = 2 * 64 * 27 * x.numel()
    dtype_name, layout = kind.split()
    fmt = torch.channels_last_3d if layout == "channels-last" else torch.contiguous_format
    dtype = getattr(torch, dtype_name)
    run, x = conv.to(dtype).to(memory_format=fmt), x.to(dtype).contiguous(memory_format=fmt)
    runs = []
    with torch.inference_mode():
        for i in range(4):
            t = time.perf_counter()
            run(x)
            runs.append(time.perf_counter() - t)
            if i == 0 and runs[0] > 5:
                break
    return flops / min(runs) / 1e9


def conv_peak_gflops() -> tuple[float, str]:
    """Fastest of a large 3D convolution in fp32 / bf16, default / channels-last layout: (GFLOP/s, kind)."""
    from volgan.inference.optimise import cpu_has_fast_bf16

    dtypes = ("float32", "bfloat16") if cpu_has_fast_bf16() else ("float32",)
    if len(dtypes) == 1:  # emulated bf16 ran at 0.2 GFLOP/s on an AVX2 CPU: minutes per probe
        print("  peak probe: bf16 skipped (this CPU has no native bf16)")
    kinds = [f"{d} {layout}" for d in dtypes for layout in ("NCDHW", "channels-last")]
    best = (0.0, "")
    for kind in kinds:
        rate = probe_gflops(kind)
        print(f"  peak probe: {kind:29s} {rate:7.1f} GFLOP/s")
        best = max(best, (rate, kind))
    return best


def flops_per_voxel(net: torch.nn.Module) -> float:
    """Direct-convolution FLOPs per voxel of the whole network (a transposed convolution counted
    per input voxel; :func:`volgan.inference.mixed_precision.convolution_flops`)."""
    from volgan.inference.mixed_precision import convolution_flops

    return sum(convolution_flops(net).values())


def benchmark_volume(shape) -> np.ndarray:
    """The MNI152 1 mm T1 (nilearn, offline) cropped/padded to ``shape``, 5 % Rician noise."""
    from data_scripts.sources import mni152
    from volgan.degrade import add_rician_noise
    from volgan.io import read_nifti

    t1 = read_nifti(mni152("t1")).array.astype(np.float32)
    out = np.zeros(shape, np.float32)
    src = tuple(slice(max((a - b) // 2, 0), max((a - b) // 2, 0) + min(a, b)) for a, b in zip(t1.shape, shape))
    dst = tuple(slice(max((b - a) // 2, 0), max((b - a) // 2, 0) + min(a, b)) for a, b in zip(t1.shape, shape))
    out[dst] = t1[src]
    return add_rician_noise(out, 5.0, seed=0).astype(np.float32)


def run_worker(bundle: str, mode: str, volume: Path, out: Path, warm: bool = False, peak_kind: str = "") -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, "--bundle", bundle, "--volume", str(volume), "--out", str(out)]
    cmd += ["--warm"] if warm else []
    cmd += ["--peak-kind", peak_kind] if peak_kind else []
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", cwd=ROOT)
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def difference(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    data_range = float(ref.max() - ref.min())
    err = out.astype(np.float64) - ref
    mse = float(np.mean(err**2))
    return float(np.abs(err).max()) / data_range, (float("inf") if mse == 0 else 10 * np.log10(data_range**2 / mse))


def speed_table(args, peak: float, peak_kind: str, work: Path) -> list[str]:
    volume = benchmark_volume(tuple(args.shape))
    vol_path = work / "volume.npy"
    np.save(vol_path, volume)
    modes = ["baseline", "fp32", "fast", *args.extras]
    rows = ["| network | mode | precision / backend | s (median) | voxels/s | x baseline | eff. GFLOP/s | % peak | % start peak | warm s | warm % peak | peak RSS GB | max err / range | PSNR of diff dB | PSNR vs whole-volume dB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    from volgan.inference.tiling import grid_plan

    alone = ["", "Fast mode's convolutions alone (each convolution call of a window timed by itself, summed over the plan): "
             "the share of the peak these layer shapes allow",
             "| network | convolution calls per pass | conv s | fast s | conv share of fast time | conv eff. GFLOP/s | conv % peak |",
             "|---|---|---|---|---|---|---|"]
    for bundle in args.bundles:
        net, settings = _network(bundle)
        fpv = flops_per_voxel(net)
        runs: dict[str, list[dict]] = {m: [] for m in modes}
        for r in range(args.repeats):
            for m in modes:
                res = run_worker(bundle, m, vol_path, work / f"{m}.npy", warm=args.warm, peak_kind=peak_kind)
                print(f"  {Path(bundle).name} {m} run {r + 1}: {res}", flush=True)
                runs[m].append(res)
        ref = np.load(work / "baseline.npy")
        whole = None
        if Path(bundle).name in args.whole_volume:
            res = run_worker(bundle, "whole", vol_path, work / "whole.npy")
            print(f"  {Path(bundle).name} whole volume: {res}", flush=True)
            whole = np.load(work / "whole.npy") if "seconds" in res else None
        convs = run_worker(bundle, "fast-convs", vol_path, work / "unused.npy", peak_kind=peak_kind)
        print(f"  {Path(bundle).name} fast convolutions alone: {convs}", flush=True)
        base_computed = grid_plan(_padded(volume.shape, settings["roi_size"]), settings["roi_size"], 0.25).computed_voxels
        base_s = statistics.median(x["seconds"] for x in runs["baseline"] if "seconds" in x)
        for m in modes:
            ok = [x for x in runs[m] if "seconds" in x]
            if not ok:
                rows.append(f"| {Path(bundle).name} | {m} | failed: {runs[m][0]['error'][:80]} |" + " |" * 12)
                continue
            s = statistics.median(x["seconds"] for x in ok)
            computed = ok[0].get("computed_voxels", base_computed)
            gflops = fpv * computed / s / 1e9
            # each run against the peak its own process measured right after it (the machine's
            # speed drifts between runs on a shared host); and against the peak at the start
            run_share = statistics.median(fpv * computed / x["seconds"] / 1e9 / x["peak_gflops"] for x in ok)
            out = np.load(work / f"{m}.npy")
            err, psnr = difference(out, ref)
            vs_whole = "-" if whole is None else f"{difference(out, whole)[1]:.1f}"
            note = f" (+{statistics.median(x['prepare_s'] for x in ok):.0f} s once)" if "prepare_s" in ok[0] else ""
            warm = "- | -"
            if "warm_seconds" in ok[0]:
                warm_s = statistics.median(x["warm_seconds"] for x in ok)
                warm_share = statistics.median(fpv * computed / x["warm_seconds"] / 1e9 / x["peak_gflops"] for x in ok)
                warm = f"{warm_s:.2f} | {100 * warm_share:.0f}"
            rows.append(
                f"| {Path(bundle).name} | {m}{note} | {ok[0].get('precision', 'fp32')} | {s:.1f} | {volume.size / s / 1e3:.1f} k | "
                f"{base_s / s:.2f} | {gflops:.1f} | {100 * run_share:.0f} | {100 * gflops / peak:.0f} | {warm} | {max(x['peak_rss'] for x in ok) / 2**30:.2f} | "
                f"{err:.2e} | {psnr:.1f} | {vs_whole} |"
            )
        if "seconds" in convs and runs["fast"] and all("seconds" in x for x in runs["fast"]):
            fast_s = statistics.median(x["seconds"] for x in runs["fast"])
            conv_gflops = fpv * convs["computed_voxels"] / convs["seconds"] / 1e9
            alone.append(f"| {Path(bundle).name} | {convs['convolutions']} | {convs['seconds']:.2f} | {fast_s:.2f} | "
                         f"{100 * convs['seconds'] / fast_s:.0f} % | {conv_gflops:.1f} | {100 * conv_gflops / convs['peak_gflops']:.0f} |")
    return rows + alone


def memory_lines(shape, work: Path) -> list[str]:
    volume = np.random.default_rng(0).random(shape, dtype=np.float32)
    path = work / "memory_volume.npy"
    np.save(path, volume)
    lines = []
    for mode in ("baseline", "fp32"):
        res = run_worker("conv", mode, path, work / "memory_out.npy")
        if "error" in res:
            lines.append(f"memory {mode}: failed ({res['error']})")
            continue
        lines.append(
            f"memory, {'x'.join(map(str, shape))} float32 ({volume.nbytes / 2**30:.2f} GB), one-conv network, {mode}: "
            f"peak RSS {res['peak_rss'] / 2**30:.2f} GB = {res['peak_rss'] / volume.nbytes:.2f}x the volume "
            f"(of which {res['rss_before'] / 2**30:.2f} GB before inference: Python, torch, the loaded volume)"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", nargs="+",
                    default=[str(ROOT / "bundles" / b) for b in ("mri_denoise_redwgan", "mri_sr_mdcsrn", "pet_lowdose_cgan")])
    ap.add_argument("--shape", nargs=3, type=int, default=[192, 224, 192])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--extras", nargs="*", default=[], choices=["fp32-torch", "fast-torch", "compile", "baseline-keepmem"])
    ap.add_argument("--whole-volume", nargs="*", default=["pet_lowdose_cgan"],
                    help="bundles whose network also runs on the whole volume at once (memory permitting), "
                         "for the last column")
    ap.add_argument("--memory-shape", nargs=3, type=int, default=[512, 512, 512])
    ap.add_argument("--warm", action="store_true",
                    help="also time a second pass over the volume in the same process (the cost of each "
                         "further file of a batch: no first-touch page faults or kernel set-up)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--bundle", help=argparse.SUPPRESS)
    ap.add_argument("--volume", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--peak-kind", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.mode = args.worker
        worker(args)
        return
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"machine: {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    peak, peak_kind = conv_peak_gflops()
    print(f"peak: {peak:.1f} GFLOP/s ({peak_kind} 64->64 3x3x3 conv)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.memory_shape and min(args.memory_shape) > 0:
            for line in memory_lines(tuple(args.memory_shape), work):
                print(line, flush=True)
        for row in speed_table(args, peak, peak_kind, work):
            print(row)


if __name__ == "__main__":
    main()
