"""``volgan pairs check MANIFEST -o OUT``: check, align and score every pair; write a report and overlays.
``volgan pairs manifest ROOT --source PATTERN --target PATTERN -o pairs.csv``: a manifest from a folder layout."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from volgan.data.manifest import ManifestError, load_manifest, pairs_from_pattern, problems_in, write_manifest
from volgan.data.overlay import write_overlay
from volgan.data.paired_subject import AlignSettings, PairError, RegistrationQualityError
from volgan.data.space import resample_onto
from volgan.data.transform_cache import TransformCache

FIELDS = ("subject", "status", "classification", "registered", "from_cache", "nmi_before", "overlap_before",
          "nmi_gain_nearby", "nmi_after", "overlap_after", "coverage", "seconds", "transform_kind",
          "transform_parameters", "overlay", "source", "target", "mask", "error")


def add_parser(subparsers) -> None:
    """Register ``pairs check`` on the ``volgan`` command's subparsers."""
    pairs = subparsers.add_parser("pairs", help="paired-volume manifests: check and align source/target pairs")
    sub = pairs.add_subparsers(dest="pairs_command", required=True)
    check = sub.add_parser("check", help="check every pair of a manifest, register what needs it, write a report")
    check.add_argument("manifest", help="CSV or JSON manifest (subject, source, target[, mask][, align])")
    check.add_argument("-o", "--output", default="pairs_check", help="report folder (default: pairs_check)")
    check.add_argument("--cache", default=None, help="transform cache folder (default: OUTPUT/transforms)")
    check.add_argument("--kind", choices=("rigid", "affine"), default="rigid", help="registration transform")
    defaults = AlignSettings()
    check.add_argument("--min-nmi", type=float, default=defaults.min_nmi, help="least NMI after registration")
    check.add_argument("--min-overlap", type=float, default=defaults.min_overlap,
                       help="least foreground Dice after registration")
    check.add_argument("--no-overlays", action="store_true", help="skip the PNG overlays")
    check.set_defaults(func=run)
    found = sub.add_parser("manifest", help="write a CSV manifest from a folder layout with a {subject} field")
    found.add_argument("root", help="folder the patterns are relative to")
    found.add_argument("--source", required=True, help="e.g. '{subject}/ldpet.nii.gz'")
    found.add_argument("--target", required=True, help="e.g. '{subject}/fdpet.nii.gz'")
    found.add_argument("--mask", default=None, help="e.g. '{subject}/brain_mask.nii.gz' (optional)")
    found.add_argument("-o", "--output", required=True, help="CSV manifest to write")
    found.set_defaults(func=run_manifest)


def run_manifest(args: argparse.Namespace) -> int:
    pairs = pairs_from_pattern(args.root, args.source, args.target, args.mask)
    write_manifest(pairs, args.output)
    problems = problems_in(pairs, read=False) if pairs else [f"no file under {args.root} matches {args.source!r}"]
    for problem in problems:
        print(f"PROBLEM {problem}", file=sys.stderr)
    print(f"{len(pairs)} pair(s) written to {args.output}")
    return 1 if problems else 0


def _row(pair, status: str, error: str = "", overlay: str = "") -> dict:
    return {
        "subject": pair.subject, "status": status, "classification": pair.space.kind,
        "registered": pair.transform is not None, "from_cache": pair.from_cache,
        "nmi_before": round(pair.space.world.nmi, 4), "overlap_before": round(pair.space.world.overlap, 4),
        "nmi_gain_nearby": round(pair.space.nmi_gain_nearby, 4), "nmi_after": round(pair.score.nmi, 4),
        "overlap_after": round(pair.score.overlap, 4), "coverage": round(pair.score.coverage, 4),
        "seconds": round(pair.seconds, 2), "transform_kind": pair.transform.GetName() if pair.transform else "",
        "transform_parameters": pair.transform_parameters(), "overlay": overlay, "error": error,
    }


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    try:
        subjects = load_manifest(args.manifest)
    except ManifestError as err:
        print(err, file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    settings = AlignSettings(kind=args.kind, min_nmi=args.min_nmi, min_overlap=args.min_overlap)
    cache = TransformCache(args.cache or out / "transforms")
    rows = []
    for subject in subjects:
        paths = {"source": subject.source, "target": subject.target, "mask": subject.mask or ""}
        try:
            pair, status, error = subject.aligned(settings, cache), "ok", ""
        except RegistrationQualityError as err:
            pair, status, error = err.pair, "failed", str(err)
        except PairError as err:
            rows.append({"subject": subject.subject, "status": "refused", **paths, "error": str(err)})
            print(f"REFUSED {err}", file=sys.stderr)
            continue
        overlay = ""
        if not args.no_overlays:
            title = (f"{pair.subject}: {pair.space.kind}, NMI {pair.space.world.nmi:.3f} -> {pair.score.nmi:.3f}, "
                     f"overlap {pair.score.overlap:.2f} ({status})")
            before = resample_onto(subject.volume("source"), pair.target)[0] if pair.transform is not None else None
            png = out / "overlays" / f"{pair.subject}.png"
            overlay = str(write_overlay(pair.target, pair.source, png, title, before=before))
        rows.append({**_row(pair, status, error, overlay), **paths})
        if error:
            print(f"FAILED {error}", file=sys.stderr)
        print(f"{pair.subject}: {status}, {pair.space.kind}, NMI {pair.score.nmi:.3f}, overlap {pair.score.overlap:.3f}"
              f"{', cached transform' if pair.from_cache else ''}")
    (out / "pairs_report.json").write_text(json.dumps(rows, indent=2))
    with open(out / "pairs_report.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "transform_parameters": " ".join(f"{v:.6g}" for v in row.get("transform_parameters", []))})
    bad = sum(r["status"] != "ok" for r in rows)
    print(f"{len(rows) - bad} ok, {bad} refused or failed; report: {out / 'pairs_report.csv'}")
    return 1 if bad else 0
