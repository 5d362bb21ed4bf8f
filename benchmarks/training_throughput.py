"""Training throughput of a bundle's generator (and critic): voxels per second through forward +
backward + optimiser step, for fp32 and bf16 autocast, channels-last, patch and batch sizes.

bf16 autocast only pays on CPUs with AVX-512 BF16 or AMX (``grep -o 'avx512_bf16\\|amx_tile' /proc/cpuinfo``);
elsewhere it is slower than fp32. Prints one row per configuration; use it to choose a bundle's
``patch_size``, ``batch_size`` and ``amp``.

Usage: python benchmarks/training_throughput.py --network red_wgan --patch 32 40 48 64 --batch 2 4 8 \
           [--precision fp32 bf16] [--channels-last] [--critic] [--steps 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from volgan.networks import MdcsrnGenerator, PetUNetGenerator, RedWganCritic, RedWganGenerator

NETWORKS = {
    "red_wgan": lambda: RedWganGenerator("small"),
    "red_wgan_paper": lambda: RedWganGenerator("paper"),
    "mdcsrn": lambda: MdcsrnGenerator(),
    "mdcsrn_small": lambda: MdcsrnGenerator(preset="small"),
    "pet_unet": lambda: PetUNetGenerator(),
}


def cpu_flags() -> str:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return "unknown"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f" {f}" in flags) or "none"


def measure(name: str, patch: int, batch: int, precision: str, channels_last: bool, critic: bool,
            steps: int) -> float:
    net = NETWORKS[name]()
    params = list(net.parameters())
    crit = RedWganCritic(patch_size=(patch,) * 3) if critic else None
    if crit is not None:
        params += list(crit.parameters())
    opt = torch.optim.Adam(params, 1e-4)
    memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    x = torch.rand(batch, 1, patch, patch, patch).to(memory_format=memory_format)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

    def step() -> None:
        with autocast:
            y = net(x)
            loss = torch.nn.functional.mse_loss(y.float(), x)
            if crit is not None:
                loss = loss - crit(y).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return batch * patch**3 / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="red_wgan", choices=sorted(NETWORKS))
    parser.add_argument("--patch", type=int, nargs="+", default=[32, 48, 64])
    parser.add_argument("--batch", type=int, nargs="+", default=[4])
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--critic", action="store_true", help="add the RED-WGAN critic's forward/backward")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"CPU flags: {cpu_flags()}; threads {torch.get_num_threads()}; torch {torch.__version__}")
    print("| network | patch | batch | precision | channels-last | critic | kvox/s |")
    print("|---|---|---|---|---|---|---|")
    for patch in args.patch:
        for batch in args.batch:
            for precision in args.precision:
                rate = measure(args.network, patch, batch, precision, args.channels_last, args.critic, args.steps)
                print(f"| {args.network} | {patch} | {batch} | {precision} | {args.channels_last} | {args.critic} "
                      f"| {rate / 1e3:.0f} |", flush=True)


if __name__ == "__main__":
    main()
