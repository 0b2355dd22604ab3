"""Registering LAION-400M's 41,408 shard partitions through the discovery sensor, on PostgreSQL and on SQLite.

For each storage, in one run: a folder of 41,408 empty `NNNNN.tar` names, sensor ticks (each lists the folder,
diffs it against the instance and registers up to LAION_AUDIT_REGISTER_BATCH keys, as the daemon would) until
every shard is registered, then the time of a partition-status query for one asset. SQLite is expected to fail
near 36k dynamic keys (dagster#16260); the script reports where it stopped instead of crashing.
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


def register_all(instance, shards_root: Path, store_root: Path, total: int) -> dict:
    from dagster import AssetKey, build_sensor_context

    from laion_audit.definitions import build_resources
    from laion_audit.defs.partitions import shard_partitions
    from laion_audit.defs.shards import shard_discovery_sensor
    from laion_audit.settings import Settings

    settings = Settings(home=str(store_root.parent), shards_root=str(shards_root), store_root=str(store_root),
                        executor="in_process", register_batch=1000, max_partitions_per_run=8)
    resources = build_resources(settings)
    ticks, registered, error = 0, 0, None
    start = time.perf_counter()
    cursor = None
    while registered < total:
        with build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
            result = shard_discovery_sensor(context)
        ticks += 1
        requests = getattr(result, "dynamic_partitions_requests", None) or []
        if not requests:
            break
        try:
            for request in requests:
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        except Exception as exc:  # SQLite's limit shows up here
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
            break
        cursor = result.cursor
        registered = len(instance.get_dynamic_partitions(shard_partitions.name))
    seconds = time.perf_counter() - start
    t = time.perf_counter()
    keys = instance.get_dynamic_partitions(shard_partitions.name)
    materialized = instance.get_materialized_partitions(AssetKey("samples"))
    status_seconds = time.perf_counter() - t
    return {"registered": len(keys), "ticks": ticks, "register_seconds": seconds,
            "keys_per_second": len(keys) / seconds if seconds else None, "status_query_seconds": status_seconds,
            "materialized": len(materialized), "error": error}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", type=int, default=41_408)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_partition_scale.json"))
    args = parser.parse_args(argv)

    from laion_audit.offline import apply_offline_environment

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
        with instance_for_test(overrides={"storage": {"postgres": {"postgres_url": url}},
                                          "telemetry": {"enabled": False}}) as instance:
            report["postgres"] = register_all(instance, shards, work / "store_pg", args.shards)
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()
    if not args.skip_sqlite:
        with instance_for_test(overrides={"telemetry": {"enabled": False}}) as instance:
            report["sqlite"] = register_all(instance, shards, work / "store_sqlite", args.shards)

    for storage in ("postgres", "sqlite"):
        if storage in report:
            r = report[storage]
            print(f"{storage:<9} registered {r['registered']:>6} in {r['register_seconds']:.1f}s over {r['ticks']} "
                  f"ticks; status query {r['status_query_seconds'] * 1000:.0f} ms" + (f"; {r['error']}" if r["error"] else ""))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
