"""Train volgan's offline default perceptual feature network (no downloads).

RED-WGAN's perceptual loss used ImageNet VGG-19, which cannot be downloaded here and is a 2D
natural-image network. The offline default is instead the encoder of a small 3D convolutional
autoencoder (volgan.losses.Conv3dFeatures) trained to reconstruct 32^3 patches of the *training*
volumes only (never the validation or test volumes). Its features respond to local 3D edges and
textures of MR anatomy. Weights are saved as a plain state dict (load with weights_only=True).

Usage: python data_scripts/train_feature_net.py --train-dir data/mr/train \
           --out bundles/mri_denoise_redwgan/models/feature_net.pt [--steps 400]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from volgan.io import read_nifti
from volgan.losses import Conv3dFeatures


def decoder_for(encoder: Conv3dFeatures) -> nn.Module:
    layers: list[nn.Module] = []
    widths = [m.out_channels for m in encoder.layers if isinstance(m, nn.Conv3d)]
    for cin, cout in zip(widths[::-1], widths[::-1][1:]):
        layers += [nn.ConvTranspose3d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
    layers.append(nn.Conv3d(widths[0], 1, 3, padding=1))
    return nn.Sequential(*layers)


def random_patches(volumes: list[np.ndarray], n: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    out = np.empty((n, 1, size, size, size), np.float32)
    for i in range(n):
        vol = volumes[rng.integers(len(volumes))]
        while True:
            corner = [rng.integers(0, s - size + 1) for s in vol.shape]
            patch = vol[tuple(slice(c, c + size) for c in corner)]
            if patch.mean() > 0.05:
                break
        out[i, 0] = patch
    return torch.from_numpy(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-dir", default="data/mr/train")
    parser.add_argument("--out", default="bundles/mri_denoise_redwgan/models/feature_net.pt")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    files = sorted(Path(args.train_dir).glob("*.nii.gz"))
    if not files:
        raise SystemExit(f"{args.train_dir}: no training volumes; run data_scripts/make_mr_data.py first")
    volumes = [(v := read_nifti(f).array) / v.max() for f in files]
    encoder = Conv3dFeatures()
    model = nn.Sequential(encoder, decoder_for(encoder))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(1, args.steps + 1):
        x = random_patches(volumes, args.batch_size, 32, rng)
        loss = nn.functional.l1_loss(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == 1:
            print(f"step {step}/{args.steps}: reconstruction L1 {loss.item():.4f}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(encoder.state_dict(), args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
