"""LAION scale on a real PostgreSQL instance: 41,408 shard partitions through the sensor, a status query, and
a multi-shard backfill. Uses LAION_AUDIT_TEST_POSTGRES_URL (default: the local server, trust auth) and skips
with the reason when no server answers."""

import math
import os
import uuid
from pathlib import Path

import pytest

from laion_audit_tests.partition_admin import backfill_runs, register_through_sensor

from .dagster_harness import definitions, resources

POSTGRES_URL = os.environ.get("LAION_AUDIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
LAION_400M_SHARDS = 41_408
QUEUED = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}


@pytest.fixture
def postgres_instance():
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(POSTGRES_URL, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {POSTGRES_URL}: {exc}")
    admin.autocommit = True
    database = f"laion_audit_test_{uuid.uuid4().hex[:8]}"
    admin.cursor().execute(f"CREATE DATABASE {database}")
    # SQLAlchemy 2.1 maps a bare postgresql:// URL to psycopg 3; dagster-postgres ships psycopg2.
    url = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://") + f"/{database}"
    from dagster import instance_for_test

    try:
        with instance_for_test(overrides={"storage": {"postgres": {"postgres_url": url}}, "run_coordinator": QUEUED,
                                          "telemetry": {"enabled": False}}) as instance:
            yield instance
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_laion_400m_partitions_on_postgres(postgres_instance, tmp_path):
    from dagster import AssetKey

    from laion_audit.definitions import build_definitions
    from laion_audit.defs.partitions import shard_partitions

    from .dagster_harness import settings_for

    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(LAION_400M_SHARDS):
        (shards / f"{i:05d}.tar").touch()
    registration = register_through_sensor(postgres_instance, definitions(shards, tmp_path / "store"),
                                           resources(shards, tmp_path / "store"),
                                           LAION_400M_SHARDS)
    assert registration.error is None
    assert registration.registered == LAION_400M_SHARDS
    keys = postgres_instance.get_dynamic_partitions(shard_partitions.name)
    assert keys[0] == "00000" and keys[-1] == "41407" and keys == sorted(keys)
    # Range runs, not one run per shard: ceil(41,408 / shards per run) ingest runs covering every shard once.
    per_ingest_run = settings_for(shards, tmp_path / "store").max_partitions_per_run
    assert len(registration.run_ranges) == math.ceil(LAION_400M_SHARDS / per_ingest_run)
    position = {key: i for i, key in enumerate(keys)}
    covered = [key for first, last in registration.run_ranges for key in keys[position[first]:position[last] + 1]]
    assert covered == keys
    assert postgres_instance.get_materialized_partitions(AssetKey("person_boxes")) == set()

    per_run = settings_for(shards, tmp_path / "store").gpu.shards_per_run
    wanted = keys[20_000 : 20_000 + 4 * per_run + 3]
    graph = build_definitions(settings_for(shards, tmp_path / "store")).resolve_asset_graph()
    runs = backfill_runs(postgres_instance, graph, "person_boxes", wanted, str(Path(__file__).resolve().parents[1]))
    assert len(runs) == math.ceil(len(wanted) / per_run)
    covered = sorted((r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
                     for r in runs)
    assert covered[0][0] == wanted[0] and covered[-1][1] == wanted[-1]
