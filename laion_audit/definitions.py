"""The single Definitions of the laion_audit code location; one setting picks executor and resources."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor, multiprocess_executor

from laion_audit.defs.alt_text import alt_text_scores, keyword_audit
from laion_audit.defs.group_reports import crime_cooccurrence_table, sentiment_by_group
from laion_audit.defs.annotation import (
    annotation_assets,
    classifier_training_job,
    person_detection_job,
    person_labels_job,
)
from laion_audit.defs.models import ModelsResource, observe_model_weights_job, weights_sources
from laion_audit.defs.resources import ShardInputsResource, ShardStoreResource
from laion_audit.defs.backfills import backfill_schedules
from laion_audit.defs.shards import samples, shard_discovery_sensor, shard_ingest_job
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


audit_reports_job = define_asset_job(
    "audit_reports_job",
    selection=AssetSelection.groups("reports") | AssetSelection.assets(keyword_audit),
    description="Recompute the dataset-level audit tables from every complete shard.",
)


def build_resources(settings: Settings) -> dict:
    return {
        "shard_store": ShardStoreResource(root=settings.store_root),
        "shard_inputs": ShardInputsResource(root=settings.shards_root),
        "models": ModelsResource(
            profile=settings.model_profile, models_dir=settings.models_dir, trained_dir=settings.trained_dir
        ),
    }


def build_definitions(settings: Settings | None = None) -> Definitions:
    settings = settings or Settings.from_env()
    return Definitions(
        assets=[samples, alt_text_scores, keyword_audit, crime_cooccurrence_table, sentiment_by_group, *weights_sources, *annotation_assets],
        jobs=[shard_ingest_job, audit_reports_job, observe_model_weights_job, person_detection_job, classifier_training_job, person_labels_job],
        sensors=[shard_discovery_sensor],
        schedules=backfill_schedules,
        resources=build_resources(settings),
        executor=_executor(settings),
    )


defs = build_definitions()
