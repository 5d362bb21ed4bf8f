"""The denoiser's edge margin, chosen on synthetic validation-style draws (never on the test set).

Each draw is a synthetic subject (``volgan.data.synth``, seeds of its own, centred on the head, so
its borders cut through tissue) with Rician noise at 3, 9 and 15 % in turn. The bundle's network
predictor runs on it with each ``--margins`` value; PSNR (data range 1 = the clean maximum) is given
in the outer ``--shell`` voxels of the volume and in the rest.

Usage: python benchmarks/edge_margin.py [--draws 6] [--size 64] [--margins 0 8] [--anatomy data/synth/anatomy.npz]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LEVELS = (3.0, 9.0, 15.0)
SEED = 424242  # not a training or validation seed of any bundle config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=str(ROOT / "bundles" / "mri_denoise_redwgan"))
    ap.add_argument("--anatomy", default=str(ROOT / "data" / "synth" / "anatomy.npz"))
    ap.add_argument("--draws", type=int, default=6)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--shell", type=int, default=6)
    ap.add_argument("--margins", type=int, nargs="+", default=[0, 8])
    args = ap.parse_args()

    from volgan.bundle import bundle_predictor
    from volgan.data.synth import SynthMRGenerator, TissueAnatomy
    from volgan.data.synth.dataset import seeded_subject_rng
    from volgan.degrade import add_rician_noise
    from volgan.inference.provenance import inner_predictor
    from volgan.metrics import psnr

    generator = SynthMRGenerator(TissueAnatomy.load(args.anatomy), shape=(args.size,) * 3, centre_on_head=1.0)
    # the network's own predictor, without the bundle's wrappers (flips, training spacing)
    predictors = {m: inner_predictor(bundle_predictor(args.bundle, edge_margin=m)) for m in args.margins}
    shell = np.ones((args.size,) * 3, bool)
    shell[(slice(args.shell, -args.shell),) * 3] = False
    print(f"{args.draws} draws of {args.size}^3, PSNR in the outer {args.shell} voxels (shell) and inside")
    print("| draw | noise % | " + " | ".join(f"margin {m} shell / inside" for m in args.margins) + " |")
    print("|---|---|" + "---|" * len(args.margins))
    gains = {m: [] for m in args.margins}
    for i in range(args.draws):
        clean = generator.draw(seeded_subject_rng(SEED, i)).image.astype(np.float32)
        clean /= clean.max()
        level = LEVELS[i % len(LEVELS)]
        noisy = add_rician_noise(clean, level, seed=i).astype(np.float32)
        cells = []
        for m, pred in predictors.items():
            out = pred.predict_array(noisy)
            scores = (psnr(out[shell], clean[shell], data_range=1.0), psnr(out[~shell], clean[~shell], data_range=1.0))
            gains[m].append(scores)
            cells.append(f"{scores[0]:.2f} / {scores[1]:.2f}")
        print(f"| {i} | {level:.0f} | " + " | ".join(cells) + " |", flush=True)
    first = args.margins[0]
    for m in args.margins[1:]:
        shell_gain = np.mean([a[0] - b[0] for a, b in zip(gains[m], gains[first])])
        inside_gain = np.mean([a[1] - b[1] for a, b in zip(gains[m], gains[first])])
        print(f"margin {m} against {first}: shell {shell_gain:+.2f} dB, inside {inside_gain:+.2f} dB (mean over draws)")


if __name__ == "__main__":
    main()
