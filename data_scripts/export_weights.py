"""Write the generator weights to ship from a training checkpoint (full state or generator only).

Reads with ``weights_only=True``; accepts a full training state (``{"generator": ..., "critic":
..., ...}``, as written by the bundles' state saver) or a generator-only file (a state dict, as
written by the best-validation saver); writes the generator's state dict alone (float32) through
a temporary file and a rename, so the bundle's ``models/`` only ever holds complete files.

Usage: python data_scripts/export_weights.py STATE.pt bundles/mri_denoise_redwgan/models/model.pt
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch


def generator_state(checkpoint: dict) -> dict[str, torch.Tensor]:
    state = checkpoint.get("generator", checkpoint)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("no generator state dict in this checkpoint")
    return {k: v.detach().float() if v.is_floating_point() else v for k, v in state.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    state = generator_state(torch.load(args.checkpoint, map_location="cpu", weights_only=True))
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, out)
    print(f"wrote {out}: {len(state)} tensors, {sum(v.numel() for v in state.values()):,} values")


if __name__ == "__main__":
    main()
