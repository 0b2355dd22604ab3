"""New shards flow through the whole per-shard chain by themselves; nightly schedules catch what was missed.

Stages follow the pipeline: ingest (samples, alt-text scores, keyword counts), detection (boxes, votes), labels
(labels, captions; once both classifiers exist), group counts (the per-shard inputs of the group tables). The `shard_chain_sensor` looks every minute for shards whose stage
output is missing while its prerequisite is in place and requests multi-shard range runs (contiguous in
registration order, at most `max_partitions_per_run` shards each), so one GPU pod loads its models once for
several shards and the `gpu` pool caps how many run at once. Partitions that are in progress or whose last
attempt failed are left alone: a shard that can never succeed is not relaunched every minute.

The nightly schedules are the safety net: they also pick up failed partitions and, reading the completion
markers (shards/lineage.py), *stale* ones — outputs made from a model, code version, upstream partition or
shard file that has since changed.
"""

from dataclasses import dataclass

from dagster import (
    AssetKey,
    AssetPartitionStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    schedule,
    sensor,
)

from laion_audit.defs.models import ModelsResource
from laion_audit.defs.partitions import shard_partitions
from laion_audit.defs.resources import ShardInputsResource, ShardStoreResource
from laion_audit.ops.code_identity import code_identity_tags
from laion_audit.ops.settings import Settings
from laion_audit.shards.lineage import LineageInspector
from laion_audit.shards.registration import missing_ranges

PARTITION_RANGE_START = "dagster/asset_partition_range_start"
PARTITION_RANGE_END = "dagster/asset_partition_range_end"
MAX_RUNS_PER_TICK = 200


@dataclass(frozen=True)
class Stage:
    job_name: str
    targets: tuple[str, ...]
    prerequisite: str | None = None
    unpartitioned_prerequisites: tuple[str, ...] = ()


STAGES = (
    Stage("shard_ingest_job", ("samples", "alt_text_scores")),
    Stage("person_detection_job", ("person_boxes", "gender_votes", "race_votes"), "samples"),
    Stage("person_labels_job", ("gender_labels", "race_labels", "person_captions"), "person_boxes",
          ("gender_classifier", "race_classifier")),
    Stage("group_counts_job", ("group_counts",), "gender_labels"),
    Stage("clip_similarity_job", ("clip_alt_text_similarity",), "samples"),
    Stage("word_gender_counts_job", ("word_gender_counts",), "gender_labels"),
    Stage("caption_embeddings_job", ("caption_embeddings",), "person_captions"),
)


def _statuses(instance, asset: str, keys: list[str]) -> dict[str, AssetPartitionStatus | None]:
    return dict(instance.get_status_by_partition(AssetKey(asset), keys, shard_partitions) or {})


def waiting_for(instance, stage: Stage) -> list[str]:
    """The unpartitioned prerequisites (the classifiers) a stage still lacks."""
    return [k for k in stage.unpartitioned_prerequisites if instance.get_latest_materialization_event(AssetKey(k)) is None]


def range_requests(stage: Stage, ranges: list[tuple[str, str]], reason: str) -> list[RunRequest]:
    return [RunRequest(job_name=stage.job_name, tags={**code_identity_tags(), PARTITION_RANGE_START: a,
                                                       PARTITION_RANGE_END: b, "laion_audit/reason": reason})
            for a, b in ranges]


def new_shard_requests(instance, stage: Stage, registered: list[str], max_per_run: int) -> list[RunRequest]:
    """Range runs for shards whose stage output is missing and neither in progress nor failed."""
    if waiting_for(instance, stage):
        return []
    ready = registered
    if stage.prerequisite:
        have = _statuses(instance, stage.prerequisite, registered)
        ready = [k for k in registered if have.get(k) == AssetPartitionStatus.MATERIALIZED]
    untouched: set[str] = set(ready)
    for target in stage.targets:
        statuses = _statuses(instance, target, ready)
        # A shard needs work when any target has never been attempted; any attempt (done, running, failed)
        # of a target leaves the shard to the schedules, which also retry failures.
        untouched &= {k for k in ready if statuses.get(k) is None}
    busy_or_done = set(ready) - untouched
    ranges = missing_ranges(ready, done=busy_or_done, in_flight=(), max_per_run=max_per_run,
                            max_runs=MAX_RUNS_PER_TICK)
    return range_requests(stage, ranges, "new shard")


def stale_or_missing_requests(instance, stage: Stage, registered: list[str], inspector: LineageInspector,
                              max_per_run: int) -> list[RunRequest]:
    """Range runs for shards whose stage output is missing, failed or stale, and whose prerequisite is current."""
    if waiting_for(instance, stage):
        return []
    ready = [k for k in registered
             if not stage.prerequisite or inspector.status(stage.prerequisite, k).state == "current"]
    done = {k for k in ready if all(inspector.status(t, k).state == "current" for t in stage.targets)}
    in_progress: set[str] = set()
    for target in stage.targets:
        statuses = _statuses(instance, target, ready)
        in_progress |= {k for k, s in statuses.items() if s == AssetPartitionStatus.IN_PROGRESS}
    ranges = missing_ranges(ready, done=done, in_flight=in_progress, max_per_run=max_per_run,
                            max_runs=MAX_RUNS_PER_TICK)
    return range_requests(stage, ranges, "missing or stale")


def lineage_inspector(shard_store: ShardStoreResource, shard_inputs: ShardInputsResource,
                      models: ModelsResource) -> LineageInspector:
    try:
        versions = {key: source.version for key, source in shard_inputs.discover().items()}
    except FileNotFoundError:
        versions = {}
    return LineageInspector(shard_store.store(), models.current_models(), versions.get)


def build_automation(settings: Settings, jobs: dict):
    stage_jobs = [jobs[stage.job_name] for stage in STAGES]

    @sensor(
        jobs=stage_jobs,
        minimum_interval_seconds=settings.sensor_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Moves new shards through the per-shard chain without anyone launching runs: range runs of "
        "the detection stage once `samples` exists, of the labels stage once boxes and both classifiers exist "
        "(ingest runs come from the discovery sensor).",
    )
    def shard_chain_sensor(context: SensorEvaluationContext):
        registered = list(context.instance.get_dynamic_partitions(shard_partitions.name))
        requests = [request for stage in STAGES[1:]
                    for request in new_shard_requests(context.instance, stage, registered,
                                                      settings.max_partitions_per_run)]
        return requests or SkipReason(f"no shard waiting for a stage ({len(registered)} registered)")

    def nightly(name: str, stage: Stage, cron: str):
        @schedule(
            name=name,
            job=jobs[stage.job_name],
            cron_schedule=cron,
            default_status=DefaultScheduleStatus.RUNNING,
            description=f"Nightly safety net: range runs of {stage.job_name} for registered shards whose "
            f"{', '.join(stage.targets)} are missing, failed or stale (per the completion markers)"
            + (f" and whose {stage.prerequisite} is current." if stage.prerequisite else "."),
        )
        def _schedule(context, shard_store: ShardStoreResource, shard_inputs: ShardInputsResource,
                      models: ModelsResource):
            if missing := waiting_for(context.instance, stage):
                return SkipReason(f"waiting for {', '.join(missing)}")
            registered = list(context.instance.get_dynamic_partitions(shard_partitions.name))
            inspector = lineage_inspector(shard_store, shard_inputs, models)
            requests = stale_or_missing_requests(context.instance, stage, registered, inspector,
                                                 settings.max_partitions_per_run)
            return requests or SkipReason(f"nothing to do: {stage.job_name} outputs are current")

        return _schedule

    schedules = [
        nightly("shard_backfill_schedule", STAGES[0], "0 3 * * *"),
        nightly("detection_backfill_schedule", STAGES[1], "0 4 * * *"),
        nightly("labels_backfill_schedule", STAGES[2], "0 5 * * *"),
        nightly("group_counts_backfill_schedule", STAGES[3], "0 6 * * *"),
        nightly("clip_similarity_backfill_schedule", STAGES[4], "0 7 * * *"),
        nightly("word_gender_counts_backfill_schedule", STAGES[5], "30 6 * * *"),
        nightly("caption_embeddings_backfill_schedule", STAGES[6], "30 5 * * *"),
    ]
    return [shard_chain_sensor], schedules
