"""Staleness the user can see: one asset check per per-shard asset, evaluated per partition.

The check reads the partition's completion marker and fails when the output is not what its inputs would make
today — an upstream partition re-materialized or itself stale, a model swapped, the code version bumped, the
shard file replaced (shards/lineage.py). So a label partition built on boxes that were since recomputed shows
red on the asset page, with the reasons in the check's metadata, even though Dagster marks only the boxes'
direct dependents stale. `lineage_checks_job` evaluates them for a selection of partitions from the UI; they
also run after each materialization of the asset or of a partitioned upstream (automation condition), unless
Settings.check_automation is off.
"""

import warnings

from dagster import (
    PreviewWarning,
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


def inputs_current_check(asset: str, automate: bool):
    spec = PER_SHARD_ASSETS[asset]
    upstream = [name for name in spec.upstream if name != SHARD_FILE]

    @asset_check(
        name=CHECK_NAME,
        asset=asset,
        partitions_def=shard_partitions,
        additional_deps=upstream,
        automation_condition=AutomationCondition.any_deps_updated() if automate else None,
        description=f"Fails when this {asset} partition was made from inputs that are no longer current: an "
        "upstream partition re-materialized or stale, a model swapped, the code version bumped, the shard "
        "file replaced. Re-materialize the partition to fix it.",
    )
    def _check(context: AssetCheckExecutionContext, shard_store: ShardStoreResource,
               shard_inputs: ShardInputsResource, models: ModelsResource) -> AssetCheckResult:
        shard = context.partition_key
        status = lineage_inspector(shard_store, shard_inputs, models).status(asset, shard)
        return AssetCheckResult(
            passed=status.state == "current",
            severity=AssetCheckSeverity.ERROR,
            description=status.summary,
            metadata={"state": status.state, "reasons": list(status.reasons),
                      "recorded_upstream": status.recorded_upstream},
        )

    return _check


def build_lineage_checks(automate: bool):
    with warnings.catch_warnings():  # partitioned asset checks are a preview feature of Dagster 1.13
        warnings.simplefilter("ignore", PreviewWarning)
        checks = [inputs_current_check(asset, automate) for asset in PER_SHARD_ASSETS]
    job = define_asset_job(
        "lineage_checks_job",
        selection=AssetSelection.checks(*checks),
        description="Evaluate the inputs_current check of every per-shard asset for one shard.",
    )
    return checks, job
