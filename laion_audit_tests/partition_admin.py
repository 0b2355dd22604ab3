"""Operating the shard partitions at LAION scale: registering through the sensor and sizing backfills.

Used by the scale benchmark and the PostgreSQL scale test; both drive the real sensor and the real backfill
daemon iteration against a real instance, so the figures are what a deployment would see.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Registration:
    registered: int
    ticks: int
    seconds: float
    error: str | None = None
    # (first, last) partition of each run the sensor requested, in order.
    run_ranges: list[tuple[str, str]] = field(default_factory=list)


def register_through_sensor(instance, defs, resources: Mapping[str, Any], expected: int) -> Registration:
    """Tick the discovery sensor (applying its partition requests, as the daemon does) until all are in."""
    from dagster import build_sensor_context

    from laion_audit.defs.partitions import shard_partitions
    from laion_audit.ops.shard_registration import apply_sensor_result

    shard_discovery_sensor = defs.resolve_sensor_def("shard_discovery_sensor")

    ticks, registered, cursor, error, ranges = 0, 0, None, None, []
    start = time.perf_counter()
    while registered < expected:
        with build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
            result = shard_discovery_sensor(context)
        ticks += 1
        requests = getattr(result, "dynamic_partitions_requests", None) or []
        if not requests:
            break
        try:
            apply_sensor_result(instance, result, observations=False)
        except Exception as exc:  # a storage limit shows up here; report it instead of crashing
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
            break
        cursor = result.cursor
        ranges += [(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
                   for r in result.run_requests or []]
        registered = len(instance.get_dynamic_partitions(shard_partitions.name))
    return Registration(registered, ticks, time.perf_counter() - start, error, ranges)


def backfill_runs(instance, asset_graph, asset: str, partition_keys: Sequence[str], working_directory: str,
                  iterations: int = 3) -> list:
    """Submit a backfill of ``asset`` over ``partition_keys`` and run the backfill daemon's iterations.

    Needs a QueuedRunCoordinator on the instance so the runs are created (queued) but not launched. Returns the
    runs the daemon created; with BackfillPolicy.multi_run(N) that is ceil(len(keys) / N).
    """
    from dagster import AssetKey, RunsFilter
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.utils import make_new_backfill_id
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.backfill import execute_backfill_iteration

    target = ModuleTarget(module_name="laion_audit.definitions", attribute=None,
                          working_directory=working_directory, location_name="laion_audit")
    backfill_id = make_new_backfill_id()
    with create_test_daemon_workspace_context(target, instance) as context:
        instance.add_backfill(PartitionBackfill.from_asset_partitions(
            backfill_id=backfill_id, asset_graph=asset_graph, partition_names=list(partition_keys),
            asset_selection=[AssetKey(asset)], backfill_timestamp=time.time(), tags={},
            dynamic_partitions_store=instance, all_partitions=False, title=None, description=None, run_config=None,
        ))
        for _ in range(iterations):
            list(execute_backfill_iteration(context, logging.getLogger("laion_audit.backfill")))
    return instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
