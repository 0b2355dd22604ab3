"""Staleness the user can see: one asset check per per-shard asset, over all its registered partitions.

The check reads the completion markers and fails when any partition is not what its inputs would make today —
an upstream partition re-materialized or itself stale, a model swapped, the code version bumped, the shard file
replaced (shards/lineage.py). So labels built on boxes that were since recomputed show a red check on the
asset page, with the stale shards and their reasons in the check's metadata, even though Dagster marks only the
boxes' direct dependents stale. Missing partitions do not fail it (they are work not yet done).

Why not a per-partition check: Dagster 1.13 cannot evaluate a partitioned check inside a multi-shard (range)
run, and every run here is one. `lineage_checks_job` evaluates all checks; with Settings.check_automation they
also run after materializations of the asset or its upstreams. Each evaluation reads every marker of the
asset (and of its upstreams): cheap on a local store, minutes at 41k shards on an object store, which is why
clusters turn the automation off and run the job (or `laion-audit stale`) on a schedule.
"""

from collections import Counter

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetSelection,
    AutomationCondition,
    asset_check,
    define_asset_job,
)

from laion_audit.defs.automation import lineage_inspector
from laion_audit.defs.models import ModelsResource
from laion_audit.defs.partitions import shard_partitions
from laion_audit.defs.resources import ShardInputsResource, ShardStoreResource
from laion_audit.shards.lineage import PER_SHARD_ASSETS, SHARD_FILE

CHECK_NAME = "inputs_current"
LISTED = 20


def inputs_current_check(asset: str, automate: bool):
    spec = PER_SHARD_ASSETS[asset]
    upstream = [name for name in spec.upstream if name != SHARD_FILE]

    @asset_check(
        name=CHECK_NAME,
        asset=asset,
        additional_deps=upstream,
        automation_condition=AutomationCondition.any_deps_updated() if automate else None,
        description=f"Fails when a {asset} partition was made from inputs that are no longer current: an "
        "upstream partition re-materialized or stale, a model swapped, the code version bumped, the shard "
        "file replaced. Re-materialize the listed partitions (or `laion-audit stale --run`) to fix it.",
    )
    def _check(context: AssetCheckExecutionContext, shard_store: ShardStoreResource,
               shard_inputs: ShardInputsResource, models: ModelsResource) -> AssetCheckResult:
        inspector = lineage_inspector(shard_store, shard_inputs, models)
        shards = context.instance.get_dynamic_partitions(shard_partitions.name)
        statuses = [inspector.status(asset, shard) for shard in shards]
        counts = Counter(status.state for status in statuses)
        stale = [status for status in statuses if status.state == "stale"]
        return AssetCheckResult(
            passed=not stale,
            severity=AssetCheckSeverity.ERROR,
            description=(f"{len(stale)} stale partitions" if stale else "every materialized partition is current"),
            metadata={"current": counts["current"], "stale": counts["stale"], "missing": counts["missing"],
                      "stale_partitions": {s.shard: list(s.reasons) for s in stale[:LISTED]}},
        )

    return _check


def build_lineage_checks(automate: bool):
    checks = [inputs_current_check(asset, automate) for asset in PER_SHARD_ASSETS]
    job = define_asset_job(
        "lineage_checks_job",
        selection=AssetSelection.checks(*checks),
        description="Evaluate the inputs_current check of every per-shard asset.",
    )
    return checks, job
