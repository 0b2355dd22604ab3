"""`laion-audit stale`: which shard outputs are missing or stale, why, and (with --run) recompute them.

The same test the nightly schedules and the `inputs_current` checks use (shards/lineage.py), from the command
line: for an auditor who swapped a model or re-ingested shards and wants to see, and fix, what that touched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from laion_audit.ops.settings import Settings
from laion_audit.shards.lineage import PER_SHARD_ASSETS


def stale_report(settings: Settings, instance, assets: list[str] | None, out: Callable[[str], None],
                 limit: int = 10) -> dict[str, dict[str, int]]:
    from laion_audit.definitions import build_resources
    from laion_audit.defs.automation import lineage_inspector
    from laion_audit.defs.partitions import shard_partitions

    resources = build_resources(settings)
    inspector = lineage_inspector(resources["shard_store"], resources["shard_inputs"], resources["models"])
    registered = list(instance.get_dynamic_partitions(shard_partitions.name))
    summary: dict[str, dict[str, int]] = {}
    for asset in assets or list(PER_SHARD_ASSETS):
        statuses = [inspector.status(asset, shard) for shard in registered]
        counts = Counter(s.state for s in statuses)
        summary[asset] = {state: counts.get(state, 0) for state in ("current", "stale", "missing")}
        out(f"{asset:<16} current {counts['current']:>6}  stale {counts['stale']:>6}  missing {counts['missing']:>6}")
        for status in [s for s in statuses if s.state == "stale"][:limit]:
            out(f"  {status.shard}: {'; '.join(status.reasons)}")
    return summary


def run_stale(settings: Settings, instance, out: Callable[[str], None]) -> bool:
    """Launch, in this process, the range runs the nightly schedules would request now, stage by stage."""
    from laion_audit.definitions import build_definitions, build_resources
    from laion_audit.defs.automation import STAGES, lineage_inspector, stale_or_missing_requests
    from laion_audit.defs.partitions import shard_partitions

    defs = build_definitions(settings)
    ok = True
    for stage in STAGES:
        resources = build_resources(settings)
        inspector = lineage_inspector(resources["shard_store"], resources["shard_inputs"], resources["models"])
        registered = list(instance.get_dynamic_partitions(shard_partitions.name))
        for request in stale_or_missing_requests(instance, stage, registered, inspector,
                                                 settings.max_partitions_per_run):
            start, end = (request.tags["dagster/asset_partition_range_start"],
                          request.tags["dagster/asset_partition_range_end"])
            out(f"{stage.job_name}: shards {start}..{end}")
            result = defs.resolve_job_def(stage.job_name).execute_in_process(
                instance=instance, tags=request.tags, raise_on_error=False)
            ok = ok and result.success
            if not result.success:
                out(f"  failed: see run {result.run_id} in the Dagster UI")
    return ok
