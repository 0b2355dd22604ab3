"""Registering LAION-400M's 41,408 shard partitions through the discovery sensor, on PostgreSQL and on SQLite.

For each storage, in one run: a folder of 41,408 empty `NNNNN.tar` names, sensor ticks (each lists the folder,
diffs it against the instance and registers up to 1,000 keys, as the daemon would) until every shard is
registered, the time of a partition-status query for one asset, and a backfill of `person_boxes` over 1,000
shards run through the backfill daemon's iteration (runs queued, not launched): how many runs BackfillPolicy
.multi_run makes. A storage failure (SQLite was reported to fail near 36k keys, dagster#16260) is reported.
Usage: python benchmarks/bench_partition_scale.py [--shards 41408] [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

# partition_admin drives Dagster's daemon internals, so it lives with the tests, not in the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


QUEUED = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}


def measure(instance, shards_root: Path, store_root: Path, total: int) -> dict:
    from dagster import AssetKey

    from laion_audit.definitions import build_definitions, build_resources
    from laion_audit.defs.partitions import shard_partitions
    from laion_audit_tests.partition_admin import backfill_runs, register_through_sensor
    from laion_audit.ops.settings import Settings

    settings = Settings(home=str(store_root.parent), shards_root=str(shards_root), store_root=str(store_root),
                        executor="in_process", register_batch=1000, max_partitions_per_run=8)
    registration = register_through_sensor(instance, build_definitions(settings), build_resources(settings), total)
    t = time.perf_counter()
    keys = instance.get_dynamic_partitions(shard_partitions.name)
    instance.get_materialized_partitions(AssetKey("person_boxes"))
    status_seconds = time.perf_counter() - t
    report = {"registered": registration.registered, "ticks": registration.ticks,
              "register_seconds": registration.seconds, "status_query_seconds": status_seconds,
              "error": registration.error}
    if registration.error is None and len(keys) >= 1000:
        wanted = keys[len(keys) // 2 : len(keys) // 2 + 1000]
        t = time.perf_counter()
        runs = backfill_runs(instance, build_definitions(settings).resolve_asset_graph(), "person_boxes", wanted,
                             str(Path(__file__).resolve().parents[1]))
        report.update(backfill_shards=len(wanted), backfill_runs=len(runs),
                      backfill_submit_seconds=time.perf_counter() - t)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", type=int, default=41_408)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_partition_scale.json"))
    args = parser.parse_args(argv)

    from laion_audit.ops.offline import apply_offline_environment

    apply_offline_environment()
    import psycopg2
    from dagster import instance_for_test

    work = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    shards = work / "shards"
    shards.mkdir()
    for i in range(args.shards):
        (shards / f"{i:05d}.tar").touch()
    report: dict = {"shards": args.shards}

    database = f"laion_audit_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(args.postgres_url)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {database}")
    # SQLAlchemy 2.1 maps a bare postgresql:// URL to psycopg 3; dagster-postgres ships psycopg2.
    url = args.postgres_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://") + f"/{database}"
    try:
        with instance_for_test(overrides={"storage": {"postgres": {"postgres_url": url}}, "run_coordinator": QUEUED,
                                          "telemetry": {"enabled": False}}) as instance:
            report["postgres"] = measure(instance, shards, work / "store_pg", args.shards)
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()
    if not args.skip_sqlite:
        with instance_for_test(overrides={"run_coordinator": QUEUED, "telemetry": {"enabled": False}}) as instance:
            report["sqlite"] = measure(instance, shards, work / "store_sqlite", args.shards)

    for storage in ("postgres", "sqlite"):
        if storage in report:
            r = report[storage]
            print(f"{storage:<9} registered {r['registered']:>6} in {r['register_seconds']:.1f}s over {r['ticks']} "
                  f"ticks; status query {r['status_query_seconds'] * 1000:.0f} ms" + (f"; {r['error']}" if r["error"] else "")
                  + (f"; backfill of {r['backfill_shards']} shards -> {r['backfill_runs']} runs "
                     f"in {r['backfill_submit_seconds']:.1f}s" if "backfill_runs" in r else ""))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
