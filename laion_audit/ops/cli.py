"""The `laion-audit` command line: sample data and the end-to-end demo (more subcommands join per domain)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from laion_audit.ops.offline import apply_offline_environment


def _cmd_sample_data(args: argparse.Namespace) -> int:
    from laion_audit.sample_data import write_sample_shards

    manifest = write_sample_shards(
        Path(args.dir),
        seed=args.seed,
        n_tar_shards=args.tar_shards,
        samples_per_shard=args.samples_per_shard,
        metadata_rows=args.metadata_rows,
    )
    shards = manifest.get("shards", {})
    print(f"wrote {len(shards)} shards to {args.dir}:")
    for key, info in sorted(shards.items()):
        print(f"  {key}: {info.get('format')}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from laion_audit.ops.demo import run_demo

    summary = run_demo(Path(args.workdir), fresh=args.fresh)
    return 0 if all(shard.succeeded for shard in summary.shards) else 1


def _cmd_provenance(args: argparse.Namespace) -> int:
    from laion_audit.ops.provenance import describe_sample, render
    from laion_audit.ops.settings import Settings
    from laion_audit.shards.sources import format_shard_key
    from laion_audit.shards.store import ShardStore

    store = ShardStore(args.store or Settings.from_env().store_root)
    shard = format_shard_key(int(args.shard))
    sample, lines = describe_sample(store, shard, args.key)
    print(render(shard, args.key, sample, lines))
    return 0 if sample is not None or lines else 1


def _cmd_stale(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from laion_audit.ops.settings import Settings
    from laion_audit.ops.stale import run_stale, stale_report

    settings = Settings.from_env()
    with DagsterInstance.get() as instance:
        summary = stale_report(settings, instance, args.asset, print)
        if not args.run:
            return 0
        if not any(counts["stale"] or counts["missing"] for counts in summary.values()):
            print("nothing to recompute")
            return 0
        return 0 if run_stale(settings, instance, print) else 1


def _cmd_report(args: argparse.Namespace) -> int:
    from laion_audit.ops.settings import Settings
    from laion_audit.report.audit_report import latest_report_path
    from laion_audit.shards.store import ShardStore

    store = ShardStore(args.store or Settings.from_env().store_root)
    path = latest_report_path(store)
    if path is None:
        print(f"no audit report in {store.reports_dir}: materialize the audit_report asset (audit_reports_job) "
              "or run `laion-audit demo`", file=sys.stderr)
        return 1
    print(path)
    if args.open:
        import webbrowser

        webbrowser.open(Path(path).resolve().as_uri() if "://" not in path else path)
    return 0


def _cmd_store_temp_files(args: argparse.Namespace) -> int:
    from laion_audit.ops.settings import Settings
    from laion_audit.shards.store import ShardStore

    store = ShardStore(args.store or Settings.from_env().store_root)
    older_than = args.older_than_hours * 3600
    leftovers = store.leftover_temp_files(older_than)
    for path, age in leftovers:
        print(f"{age / 3600:8.1f} h  {path}")
    if args.remove:
        removed = store.remove_leftover_temp_files(older_than)
        print(f"removed {len(removed)} temporary files older than {args.older_than_hours} h")
    else:
        print(f"{len(leftovers)} temporary files older than {args.older_than_hours} h (--remove deletes them)")
    return 0


def _cmd_crime_review_sample(args: argparse.Namespace) -> int:
    from laion_audit.audits.crime_review import write_review_sample
    from laion_audit.ops.settings import Settings
    from laion_audit.shards.store import ShardStore

    store = ShardStore(args.store or Settings.from_env().store_root)
    try:
        written = write_review_sample(store, Path(args.out), per_word=args.per_word, seed=args.seed)
    except (FileNotFoundError, ValueError) as exc:
        print(f"laion-audit: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {sum(written.values())} rows for {len(written)} crime words to {args.out}; fill the is_crime "
          "column (yes/no) and pass the file as alt_text_scores' crime_review")
    return 0


def _cmd_crime_review_precision(args: argparse.Namespace) -> int:
    from laion_audit.audits.crime_review import word_precision

    try:
        precision = word_precision(Path(args.review))
    except ValueError as exc:
        print(f"laion-audit: {exc}", file=sys.stderr)
        return 2
    print(f"{'word':<24}{'reviewed':>9}{'crime':>7}{'precision':>11}")
    for word, row in precision.items():
        print(f"{word:<24}{row['reviewed']:>9}{row['crime']:>7}{row['precision']:>11.2f}")
    return 0


def _cmd_models_init_tiny(args: argparse.Namespace) -> int:
    from laion_audit.models.tiny import init_tiny_models

    manifest = init_tiny_models(Path(args.dir), seed=args.seed)
    print(f"built {len(manifest)} tiny random-weight models in {args.dir}:")
    for role, info in sorted(manifest.items()):
        substitute = f"  (substitute for {info['substitute_for']})" if info.get("substitute_for") else ""
        print(f"  {role:<20} {info['family']:<15} {info['path']:<28} sha256 {info['fingerprint'][:16]}{substitute}")
    return 0


def _cmd_models_fetch(args: argparse.Namespace) -> int:
    from laion_audit.models.fetch import FetchError, fetch_profile

    try:
        manifest = fetch_profile(args.profile, Path(args.dir))
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for role, info in sorted(manifest.items()):
        print(f"  {role:<20} {info['source']:<45} sha256 {info['fingerprint'][:16]}")
    return 0


# What to run after an import: the asset jobs whose outputs read the imported partitions.
_AFTER_IMPORT = {
    "person_boxes": "gender_votes/race_votes (person_detection_job keeps the imported boxes) and person_labels_job",
    "gender_labels": "group_counts_job", "race_labels": "group_counts_job", "person_captions": "the caption reports",
}


def _cmd_import(args: argparse.Namespace) -> int:
    from laion_audit.annotation.imports import ImportFileError, import_annotations
    from laion_audit.ops.settings import Settings
    from laion_audit.shards.store import ShardStore

    store = ShardStore(args.store or Settings.from_env().store_root)
    registered = None
    if os.environ.get("DAGSTER_HOME"):
        from dagster import DagsterInstance

        from laion_audit.defs.partitions import shard_partitions

        with DagsterInstance.get() as instance:
            registered = set(instance.get_dynamic_partitions(shard_partitions.name))
    try:
        report = import_annotations(store, Path(args.file), args.kind, question=args.question, registered=registered,
                                    min_side=args.min_side)
    except (ImportFileError, ValueError, FileNotFoundError) as exc:
        print(f"laion-audit: {exc}", file=sys.stderr)
        return 2
    print(f"{report.asset}: {report.rows} rows of {report.file} (sha256 {report.sha256[:16]}); "
          f"{len(report.written)} shards written, {len(report.skipped_complete)} already imported from this file")
    for reason, n in sorted(report.to_dict()["rejected_by_reason"].items()):
        print(f"  rejected {n:>6}  {reason}")
    for reason, n in sorted(report.error_rows.items()):
        print(f"  error rows {n:>4}  {reason}")
    print(f"report: {report.report_path}")
    print("Dagster has no materialization events for these partitions; downstream assets read the store's markers. "
          f"Next: {_AFTER_IMPORT[report.asset]}. A normal run keeps a current import; force: true replaces it.")
    return 0 if report.written or report.skipped_complete else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="laion-audit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    sample = commands.add_parser("sample-data", help="write deterministic LAION-like sample shards to DIR")
    sample.add_argument("dir")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--tar-shards", type=int, default=3, help="good webdataset shards (a bad one is added)")
    sample.add_argument("--samples-per-shard", type=int, default=48)
    sample.add_argument("--metadata-rows", type=int, default=400, help="rows of the metadata-parquet shard")
    sample.set_defaults(func=_cmd_sample_data)

    demo = commands.add_parser("demo", help="generate sample shards and materialize the pipeline over them")
    demo.add_argument(
        "--workdir",
        default=os.environ.get("LAION_AUDIT_HOME", ".laion_audit"),
        help="where shards, outputs and DAGSTER_HOME go (default: $LAION_AUDIT_HOME or ./.laion_audit)",
    )
    demo.add_argument("--fresh", action="store_true", help="delete the workdir first")
    demo.set_defaults(func=_cmd_demo)

    models = commands.add_parser("models", help="stage model weights for a profile")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    init_tiny = model_commands.add_parser(
        "init-tiny", help="build the tiny profile (seeded random weights, real ultralytics/open_clip/transformers)"
    )
    init_tiny.add_argument("dir", help="models folder (the demo uses $LAION_AUDIT_HOME/models/tiny)")
    init_tiny.add_argument("--seed", type=int, default=0)
    init_tiny.set_defaults(func=_cmd_models_init_tiny)

    fetch = model_commands.add_parser(
        "fetch", help="download a profile's weights through each library (connected machine), record fingerprints"
    )
    fetch.add_argument("--profile", default="paper", choices=["paper"])
    fetch.add_argument("dir")
    fetch.set_defaults(func=_cmd_models_fetch)

    provenance = commands.add_parser(
        "provenance", help="for each person in a sample: each label and caption with model, weights, code and run"
    )
    provenance.add_argument("shard", help="shard number or key, e.g. 3 or 00003")
    provenance.add_argument("key", help="sample key as in the samples table, e.g. 000030004")
    provenance.add_argument("--store", help="store root (default: $LAION_AUDIT_STORE or $LAION_AUDIT_HOME/store)")
    provenance.set_defaults(func=_cmd_provenance)

    store_cmd = commands.add_parser("store", help="inspect the output store")
    store_commands = store_cmd.add_subparsers(dest="store_command", required=True)
    temps = store_commands.add_parser(
        "temp-files", help="list (or --remove) temporary files that killed runs left behind; a live writer's "
        "file is never that old")
    temps.add_argument("--older-than-hours", type=float, default=24.0)
    temps.add_argument("--remove", action="store_true")
    temps.add_argument("--store", help="store root (default: $LAION_AUDIT_STORE or $LAION_AUDIT_HOME/store)")
    temps.set_defaults(func=_cmd_store_temp_files)

    review = commands.add_parser("crime-review", help="human review of crime-word matches")
    review_commands = review.add_subparsers(dest="crime_review_command", required=True)
    review_sample = review_commands.add_parser(
        "sample", help="write a seeded sample of matched captions per crime word to a CSV with an empty is_crime "
        "column, from the complete alt_text_scores shards of the store")
    review_sample.add_argument("--store", help="store root (default: $LAION_AUDIT_STORE or $LAION_AUDIT_HOME/store)")
    review_sample.add_argument("--out", required=True, help="review CSV to write")
    review_sample.add_argument("--per-word", type=int, default=20)
    review_sample.add_argument("--seed", type=int, default=0)
    review_sample.set_defaults(func=_cmd_crime_review_sample)
    review_precision = review_commands.add_parser("precision", help="per-word precision of a filled review")
    review_precision.add_argument("review")
    review_precision.set_defaults(func=_cmd_crime_review_precision)

    imports = commands.add_parser(
        "import", help="import existing boxes, labels or captions (the paper scripts' CSVs or parquet in this "
        "project's schemas) as shard partitions, provenance 'imported from FILE sha256 ...'")
    imports.add_argument("kind", choices=["boxes", "labels", "captions"])
    imports.add_argument("file")
    imports.add_argument("--store", help="store root (default: $LAION_AUDIT_STORE or $LAION_AUDIT_HOME/store)")
    imports.add_argument("--question", choices=["gender", "race"], help="which labels (required for labels)")
    imports.add_argument("--min-side", type=float, default=30.0, help="boxes: valid when min side >= this (px)")
    imports.set_defaults(func=_cmd_import)

    report = commands.add_parser("report", help="print the path of the latest audit report (HTML)")
    report.add_argument("--store", help="output store (default: $LAION_AUDIT_STORE)")
    report.add_argument("--open", action="store_true", help="open it in the default browser")
    report.set_defaults(func=_cmd_report)

    stale = commands.add_parser(
        "stale", help="per-shard outputs that are missing or stale (a model, upstream partition, code version or "
        "shard file changed), with reasons; --run recomputes them (instance at $DAGSTER_HOME)")
    stale.add_argument("--asset", action="append", help="limit to this asset (repeatable)")
    stale.add_argument("--run", action="store_true", help="launch range runs for stale and missing partitions")
    stale.set_defaults(func=_cmd_stale)
    return parser


def main(argv: list[str] | None = None) -> int:
    apply_offline_environment()
    args = build_parser().parse_args(argv)
    from laion_audit.ops.settings import SettingsError

    try:
        return args.func(args)
    except SettingsError as exc:
        print(f"laion-audit: {exc}", file=sys.stderr)
        return 2


def console() -> None:
    """The `laion-audit` executable: run the command, flush, and leave without interpreter finalization.

    Arrow's parquet I/O threads can still be alive when Python tears its modules down, and their C++ thread
    objects then abort the process ("terminate called without an active exception", exit -6) after the command
    has finished and printed its result (apache/arrow#34314). Nothing of ours needs finalization once the
    command returned: every file is written atomically and every store handle closed by then.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    console()
