"""The ``volgan`` command line: ``volgan infer BUNDLE INPUT_DIR -o OUT_DIR``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from volgan import __version__


def bundle_predictor(bundle: str | Path, **overrides):
    """The ``predictor`` defined by a bundle's ``configs/inference.yaml``, with config overrides."""
    from monai.bundle import ConfigParser

    bundle = Path(bundle)
    config = bundle / "configs" / "inference.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{bundle}: not a volgan bundle (no configs/inference.yaml)")
    parser = ConfigParser()
    parser.read_config(str(config))
    parser["bundle_root"] = str(bundle)
    for key, value in overrides.items():
        if value is not None:
            parser[key] = value
    return parser.get_parsed_content("predictor")


def _infer(args: argparse.Namespace) -> int:
    from volgan.inference import FolderRunner

    predictor = bundle_predictor(
        args.bundle,
        device=None if args.device is None else f"$torch.device({args.device!r})",
        precision=args.precision,
        sw_batch_size=args.sw_batch_size,
        overlap=args.overlap,
        channels_last=args.channels_last or None,
    )
    runner = FolderRunner(predictor, args.input, args.output, overwrite=args.overwrite, raise_on_failure=False)
    results = runner.run()
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        print(f"FAILED {r.error}", file=sys.stderr)
    print(
        f"{sum(r.status == 'done' for r in results)} done, {sum(r.status == 'skipped' for r in results)} skipped, "
        f"{len(failed)} failed; report: {Path(args.output) / runner.report_name}"
    )
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="volgan", description="3D volumetric reconstruction with GANs (MONAI).")
    parser.add_argument("--version", action="version", version=f"volgan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    infer = sub.add_parser("infer", help="run a bundle over a folder of NIfTI files / DICOM series folders")
    infer.add_argument("bundle", help="bundle folder, e.g. bundles/mri_denoise_redwgan")
    infer.add_argument("input", help="folder of inputs")
    infer.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    infer.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if available)")
    infer.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None, help="default: the bundle's (fp32)")
    infer.add_argument("--channels-last", action="store_true", help="channels-last 3D memory format")
    infer.add_argument("--sw-batch-size", type=int, default=None, help="windows per forward pass")
    infer.add_argument("--overlap", type=float, default=None, help="sliding-window overlap fraction")
    infer.add_argument("--overwrite", action="store_true", help="recompute outputs that already exist")
    infer.set_defaults(func=_infer)
    from volgan import pairs_cli

    pairs_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
