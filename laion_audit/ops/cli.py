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

    from laion_audit.ops.user_dirs import default_home

    summary = run_demo(Path(args.workdir or default_home()), fresh=args.fresh)
    return 0 if all(shard.succeeded for shard in summary.shards) and summary.report else 1


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


def _dagster_home_or_explain() -> str | None:
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        print("laion-audit: DAGSTER_HOME is not set, so there is no instance to register shards in (the dagster CLI "
              "would use a throwaway one). Run `laion-audit init` and export the variables it prints.",
              file=sys.stderr)
    return home


def _cmd_init(args: argparse.Namespace) -> int:
    from laion_audit.ops.instance_setup import init_instance, next_steps
    from laion_audit.ops.settings import Settings

    settings = Settings.from_env()
    home = Path(args.dagster_home or os.environ.get("DAGSTER_HOME") or f"{settings.home}/dagster_home")
    result = init_instance(home, settings, force=args.force)
    print("\n".join(next_steps(result, settings)))
    return 0


def _cmd_shards_register(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from laion_audit.ops.settings import Settings
    from laion_audit.ops.shard_registration import register_shards

    if not _dagster_home_or_explain():
        return 2
    settings = Settings.from_env()
    with DagsterInstance.get() as instance:
        registration = register_shards(instance, settings, settle=args.settle)
    if registration.added:
        shown = ", ".join(registration.added[:10]) + (" …" if len(registration.added) > 10 else "")
        print(f"registered {len(registration.added)} shard partitions from {settings.shards_root}: {shown}")
    else:
        print(f"registered nothing new: {registration.note}")
    print(f"{registration.registered} shard partitions registered in all; materialize one with "
          "`dagster asset materialize -m laion_audit.definitions --select samples --partition KEY`")
    return 0


def _cmd_shards_list(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from laion_audit.ops.settings import Settings
    from laion_audit.ops.shard_registration import REGISTER_HINT, explain_key, list_shards
    from laion_audit.shards.sources import format_shard_key

    if not _dagster_home_or_explain():
        return 2
    settings = Settings.from_env()
    with DagsterInstance.get() as instance:
        listing = list_shards(instance, settings)
    if args.keys:
        try:
            keys = [format_shard_key(int(key)) for key in args.keys]
        except ValueError as exc:
            print(f"laion-audit: {exc} (shard keys are numbers such as 3 or 00003)", file=sys.stderr)
            return 2
        explanations = [explain_key(key, listing, settings.shards_root) for key in keys]
        print("\n".join(explanations))
        return 0 if all(": registered (" in line for line in explanations) else 1
    for item in listing:
        state = "registered" if item.registered else "NOT registered"
        print(f"  {item.key}  {state:<15} {item.format or '-':<18} {item.file or '(no file under the shard root)'}")
    waiting = sum(1 for item in listing if not item.registered)
    print(f"{len(listing)} shards under {settings.shards_root} or registered; "
          + (f"{waiting} not registered: run `{REGISTER_HINT}`" if waiting else "all registered"))
    return 0


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
        default=None,
        help="where shards, outputs and DAGSTER_HOME go (default: $LAION_AUDIT_HOME, else the user data folder, "
        "e.g. ~/.local/share/laion_audit)",
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
    init = commands.add_parser(
        "init", help="set up a Dagster instance for this project (DAGSTER_HOME with the local dagster.yaml) and the "
        "shard and store folders; prints the variables to export")
    init.add_argument("--dagster-home", help="default: $DAGSTER_HOME, else $LAION_AUDIT_HOME/dagster_home")
    init.add_argument("--force", action="store_true", help="replace an existing, different dagster.yaml")
    init.set_defaults(func=_cmd_init)

    shards_cmd = commands.add_parser("shards", help="shard partitions in the Dagster instance at $DAGSTER_HOME")
    shards_commands = shards_cmd.add_subparsers(dest="shards_command", required=True)
    shards_register = shards_commands.add_parser(
        "register", help="register the shard files under $LAION_AUDIT_SHARDS as partitions through the discovery "
        "sensor, without a daemon; `dagster asset materialize --partition KEY` works right after")
    shards_register.add_argument("--settle", action="store_true",
                                 help="apply the sensor's settle wait (default: the files are complete now)")
    shards_register.set_defaults(func=_cmd_shards_register)
    shards_list = shards_commands.add_parser(
        "list", help="shards found and registered; with KEYs, why each can or cannot be materialized")
    shards_list.add_argument("keys", nargs="*", help="shard numbers or keys, e.g. 3 or 00003")
    shards_list.set_defaults(func=_cmd_shards_list)
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
