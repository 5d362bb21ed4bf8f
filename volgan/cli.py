"""The ``volgan`` command line: ``volgan infer BUNDLE INPUT... -o OUT_DIR``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from volgan import __version__
from volgan.bundle import bundle_config, bundle_model_identity, bundle_modality, bundle_predictor


def _infer(args: argparse.Namespace) -> int:
    import torch

    from volgan.bundle_origin import warn_if_external
    from volgan.inference import BatchRunner
    from volgan.inference.sharding import Shard

    warn_if_external(args.bundle)

    if args.suv_output and bundle_config(args.bundle).get("output_suv") is None:
        print(f"volgan: error: {args.bundle} has no output_suv setting; --suv-output is for PET bundles", file=sys.stderr)
        return 2
    shard = Shard.from_env()
    device = args.device
    if device is None and shard.world > 1:
        device = str(shard.device())  # one GPU per process under torchrun
    if shard.world > 1 and torch.device(device or "cpu").type == "cpu":
        torch.set_num_threads(shard.cpu_threads())
    try:
        predictor = bundle_predictor(
            args.bundle,
            device=None if device is None else f"$torch.device({device!r})",
            precision=args.precision,
            sw_batch_size=args.sw_batch_size,
            overlap=args.overlap,
            channels_last=args.channels_last or None,
            fast=args.fast or None,
            backend=args.backend,
            output_suv=True if args.suv_output else None,
        )
    except RuntimeError as err:  # MONAI wraps the predictor's refusal of an option value
        if not isinstance(err.__cause__, ValueError):
            raise
        print(f"volgan: error: {args.bundle}: {err.__cause__}", file=sys.stderr)
        return 2
    runner = BatchRunner(predictor, args.inputs, args.output, overwrite=args.overwrite, qa=args.qa,
                         raise_on_failure=False, shard=shard, model=bundle_model_identity(args.bundle),
                         modality=bundle_modality(args.bundle), strict=args.strict)
    results = runner.run()
    failed = [r for r in results if r.status == "failed"]
    if shard.rank == 0:
        for r in failed:
            print(f"FAILED {r.error}", file=sys.stderr)
        for r in results:
            if r.warning:
                print(f"WARNING {r.warning}", file=sys.stderr)
        print(
            f"{sum(r.status == 'done' for r in results)} done, {sum(r.status == 'skipped' for r in results)} skipped, "
            f"{len(failed)} failed; report: {Path(args.output) / runner.report_name}.csv (.json)"
        )
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="volgan", description="3D volumetric reconstruction with GANs (MONAI).")
    parser.add_argument("--version", action="version", version=f"volgan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    infer = sub.add_parser(
        "infer", help="run a bundle over volumes (files, folders, globs, DICOM series folders)",
        description="Run a bundle over volumes. Under `torchrun --nproc_per_node N` the inputs are shared "
        "among the processes (one GPU each) and one merged report is written.",
    )
    infer.add_argument("bundle", help="bundle folder, e.g. bundles/mri_denoise_redwgan")
    infer.add_argument("inputs", nargs="+", help="NIfTI files, DICOM series folders, folders of them, or globs")
    infer.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    infer.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if available)")
    infer.add_argument("--fast", action="store_true",
                       help="fast mode: fewer, larger windows (small differences at their seams), reduced "
                            "precision where the hardware has it natively (bf16 on CUDA and on CPUs with "
                            "AVX-512 BF16 or AMX; a bundle's fp32_share keeps its cheapest layers in fp32); "
                            "fp32 stays the default for quantitative work (see README)")
    infer.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None,
                       help="default: fp32 (fast mode: the device's fast precision)")
    infer.add_argument("--backend", choices=("auto", "native", "torch"), default=None,
                       help="auto, on the CPU: native (PET U-Net: oneDNN convolutions without concatenation "
                            "copies, fp32, or bf16 where the CPU runs it; mDCSRN, RED-WGAN in fp32: PyTorch "
                            "convolutions and volgan's C kernels, need a C compiler), else PyTorch")
    infer.add_argument("--channels-last", action="store_true", help="channels-last 3D memory format")
    infer.add_argument("--sw-batch-size", type=int, default=None, help="windows per forward pass")
    infer.add_argument("--overlap", type=float, default=None, help="sliding-window overlap fraction")
    infer.add_argument("--suv-output", action="store_true",
                       help="PET bundles: write SUV instead of the input's units (Bq/ml for DICOM PET in BQML)")
    infer.add_argument("--qa", action="store_true", help="also write <name>_qa.png (input / output mid slices)")
    infer.add_argument("--overwrite", action="store_true",
                       help="recompute outputs that already exist, also those made from another input, by another "
                            "model or with other options (refused as conflicts without it)")
    infer.add_argument("--strict", action="store_true",
                       help="fail an input with values the model cannot represent (e.g. negative values into a "
                            "model whose output is non-negative; a DICOM modality the bundle is not for) "
                            "instead of warning")
    infer.set_defaults(func=_infer)
    from volgan import pairs_cli
    from volgan.label.serve import add_parser as add_label_parser

    pairs_cli.add_parser(sub)
    add_label_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    from volgan.io import VolumeError

    try:
        return int(args.func(args))
    except (VolumeError, FileNotFoundError) as err:  # problems with the job as a whole, not one input
        print(f"volgan: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
