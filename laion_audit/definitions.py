"""The single Definitions of the laion_audit code location, built by a factory from one Settings object.

`build_definitions(settings)` is what tests, the demo and benchmarks call with their own folders; the code
location's entry point is the `defs` function below, which Dagster calls when it loads the location, so the
environment is read then and never at import.
"""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    define_asset_job,
    definitions,
    in_process_executor,
    multiprocess_executor,
)

from laion_audit.defs.alt_text import build_alt_text_scores, keyword_audit
from laion_audit.defs.annotation import build_annotation_defs
from laion_audit.defs.audit_report import audit_report
from laion_audit.defs.automation import build_automation
from laion_audit.defs.group_reports import crime_cooccurrence_table, sentiment_by_group
from laion_audit.defs.impressions import build_impressions_defs, build_impressions_jobs
from laion_audit.defs.lineage import build_lineage_checks
from laion_audit.defs.models import ModelsResource, build_clip_weights, observe_model_weights_job, weights_sources
from laion_audit.defs.models import build_sd_weights
from laion_audit.defs.resources import ShardInputsResource, ShardStoreResource
from laion_audit.defs.shard_counts import build_shard_counts
from laion_audit.defs.shards import build_shard_defs
from laion_audit.defs.transfer import build_transfer_defs
from laion_audit.defs.topics import build_topic_defs
from laion_audit.ops.code_identity import code_identity_tags
from laion_audit.ops.settings import Settings

# backoffLimit 0: a replacement pod made by the Job controller would leave the step hanging (dagster#33755);
# retries are Dagster's (op retry policy, run retries for crashed or evicted runs).
K8S_EXECUTOR_CONFIG = {"step_k8s_config": {"job_spec_config": {"backoff_limit": 0}}}


def _executor(settings: Settings):
    if settings.executor == "in_process":
        return in_process_executor
    if settings.executor == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(K8S_EXECUTOR_CONFIG)
    return multiprocess_executor


def build_resources(settings: Settings) -> dict:
    return {
        "shard_store": ShardStoreResource(root=settings.store_root),
        "shard_inputs": ShardInputsResource(root=settings.shards_root),
        "models": ModelsResource(
            profile=settings.model_profile, models_dir=settings.models_dir, trained_dir=settings.trained_dir
        ),
    }


def build_definitions(settings: Settings | None = None) -> Definitions:
    """Definitions for ``settings`` (the environment's when omitted)."""
    settings = settings or Settings.from_env()
    shards = build_shard_defs(settings)
    annotation = build_annotation_defs(settings)
    shard_counts, group_counts_job = build_shard_counts(settings)
    checks, lineage_checks_job = build_lineage_checks(settings.check_automation)
    topic_assets, topic_jobs = build_topic_defs(settings)
    # The text and group tables and the report: each runs on any store (a text-only one included). The other
    # dataset-level reports (same `reports` group) need their per-model inputs and have jobs of their own.
    audit_reports_job = define_asset_job(
        "audit_reports_job",
        selection=AssetSelection.assets(keyword_audit, crime_cooccurrence_table, sentiment_by_group, audit_report),
        tags=code_identity_tags(),
        description="Recompute the alt-text and group tables from every complete shard, then the audit report.",
    )
    clip_weights, observe_clip_weights_job = build_clip_weights(settings.model_profile)
    sd_weights, observe_sd_weights_job = build_sd_weights(settings.model_profile)
    transfer_assets, transfer_jobs = build_transfer_defs(settings)
    jobs = {job.name: job for job in [*shards.jobs, *annotation.jobs, group_counts_job,
                                      *build_impressions_jobs(settings), *transfer_jobs, *topic_jobs]}
    sensors, schedules = build_automation(settings, jobs)
    return Definitions(
        assets=[*shards.assets, build_alt_text_scores(settings), *shard_counts, keyword_audit, crime_cooccurrence_table,
                sentiment_by_group, audit_report, *weights_sources, clip_weights, *annotation.assets,
                *build_impressions_defs(settings), sd_weights, *transfer_assets, *topic_assets],
        asset_checks=checks,
        jobs=[*jobs.values(), audit_reports_job, observe_model_weights_job, observe_clip_weights_job,
              lineage_checks_job, observe_sd_weights_job],
        sensors=[*shards.sensors, *sensors],
        schedules=schedules,
        resources=build_resources(settings),
        executor=_executor(settings),
    )


@definitions
def defs() -> Definitions:
    return build_definitions(Settings.from_env())
