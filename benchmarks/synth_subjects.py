"""How fast volgan.data.synth draws training subjects, and a montage of random draws.

Prints subjects per second (one process, ``--threads`` torch threads) for each patch size, and,
with ``--montage PATH``, writes a PNG of 16 random whole-head subjects (axial mid slices, each with
its contrast kind and voxel size) so a reader sees the variety.

Usage: python benchmarks/synth_subjects.py --anatomy data/synth/anatomy.npz --patch 32 48 64 \
           [--draws 20] [--threads 1] [--montage bundles/mri_denoise_redwgan/docs/synthetic_subjects.png]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from volgan.data.synth import SynthMRGenerator, TissueAnatomy


def montage(anatomy: TissueAnatomy, path: str, seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centre = anatomy.head_voxels().mean(0)  # whole heads, randomly placed
    gen = SynthMRGenerator(anatomy, shape=(144, 160, 144), spacing_range=(1.2, 1.4), centre=centre, centre_jitter=8.0)
    fig, axes = plt.subplots(4, 4, figsize=(10, 11))
    for k, ax in enumerate(axes.flat):
        subject = gen.draw(np.random.default_rng(seed + k))
        image = subject.image[:, :, subject.image.shape[2] // 2]
        ax.imshow(image.T, cmap="gray", origin="lower", vmin=0, vmax=float(np.percentile(subject.image, 99.5)) or 1)
        spacing = "x".join(f"{s:.1f}" for s in subject.spacing)
        ax.set_title(f"{subject.contrast.kind}, {spacing} mm", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("volgan.data.synth: 16 random subjects (seeds 0-15)")
    fig.tight_layout()
    tmp = f"{path}.partial-{os.getpid()}.png"
    fig.savefig(tmp, dpi=60)
    plt.close(fig)
    os.replace(tmp, path)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--anatomy", default="data/synth/anatomy.npz")
    parser.add_argument("--patch", type=int, nargs="+", default=[32, 48, 64])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--montage", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    anatomy = TissueAnatomy.load(args.anatomy)
    print(f"| patch | subjects/s | ms/subject |  (threads {args.threads})")
    print("|---|---|---|")
    for patch in args.patch:
        gen = SynthMRGenerator(anatomy, shape=(patch,) * 3)
        gen.draw(np.random.default_rng(0))
        start = time.perf_counter()
        for seed in range(args.draws):
            gen.draw(np.random.default_rng(seed))
        seconds = (time.perf_counter() - start) / args.draws
        print(f"| {patch}^3 | {1 / seconds:.1f} | {1000 * seconds:.0f} |", flush=True)
    if args.montage:
        montage(anatomy, args.montage)


if __name__ == "__main__":
    main()
