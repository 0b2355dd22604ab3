"""Definitions bound to temporary folders and a real (temporary, SQLite) Dagster instance."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, instance_for_test

from laion_audit.definitions import build_definitions, build_resources
from laion_audit.ops.settings import Settings


def settings_for(shards_root: Path, store_root: Path) -> Settings:
    return Settings(
        home=str(store_root.parent),
        shards_root=str(shards_root),
        store_root=str(store_root),
        executor="in_process",
        register_batch=1000,
        max_partitions_per_run=8,
        settle_seconds=0,  # tests write complete shards; the settle wait has tests of its own
    )


def dagster_test_instance():
    """A temporary on-disk SQLite instance (not the in-memory ephemeral one) with telemetry off."""
    return instance_for_test(overrides={"telemetry": {"enabled": False}})


def register(instance: DagsterInstance, keys: list[str]) -> None:
    from laion_audit.defs.partitions import shard_partitions

    instance.add_dynamic_partitions(shard_partitions.name, keys)


def definitions(shards_root: Path, store_root: Path):
    return build_definitions(settings_for(shards_root, store_root))


def resources(shards_root: Path, store_root: Path) -> dict:
    return build_resources(settings_for(shards_root, store_root))


def tick_discovery(instance: DagsterInstance, shards_root: Path, store_root: Path, cursor: str | None = None,
                   settings: Settings | None = None):
    """One tick of the discovery sensor; its partition requests are applied as the daemon would apply them."""
    from dagster import build_sensor_context

    from laion_audit.ops.shard_registration import apply_sensor_result

    settings = settings or settings_for(shards_root, store_root)
    sensor = build_definitions(settings).resolve_sensor_def("shard_discovery_sensor")
    with build_sensor_context(instance=instance, resources=build_resources(settings), cursor=cursor) as context:
        result = sensor(context)
    apply_sensor_result(instance, result, observations=False)
    return result


def registered_by(result) -> list[str]:
    return [key for request in getattr(result, "dynamic_partitions_requests", None) or []
            for key in request.partition_keys]
