"""Nightly backfill schedules, one per stage of the per-shard pipeline.

Each stage requests multi-shard range runs (contiguous in registration order) for the registered shards whose
stage output is missing, whose prerequisite is in place, and that no queued or running run already covers:
ingest for new shards, then detection and votes once `samples` exists, then labels and captions once boxes
and both classifiers exist. A schedule tick therefore never requests work that would fail for lack of input.
"""

from dagster import (
    AssetKey,
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from laion_audit.defs.annotation import person_detection_job, person_labels_job
from laion_audit.defs.partitions import shard_partitions
from laion_audit.defs.shards import shard_ingest_job
from laion_audit.ops.settings import Settings
from laion_audit.shards.registration import missing_ranges

PARTITION_RANGE_START = "dagster/asset_partition_range_start"
PARTITION_RANGE_END = "dagster/asset_partition_range_end"
_settings = Settings.from_env()


def partitions_in_flight(context: ScheduleEvaluationContext, job_name: str, registered: list[str]) -> set[str]:
    position = {key: i for i, key in enumerate(registered)}
    busy: set[str] = set()
    records = context.instance.get_run_records(RunsFilter(job_name=job_name, statuses=list(IN_PROGRESS_RUN_STATUSES)))
    for record in records:
        tags = record.dagster_run.tags
        if "dagster/partition" in tags:
            busy.add(tags["dagster/partition"])
        elif PARTITION_RANGE_START in tags and tags[PARTITION_RANGE_START] in position:
            start, end = position[tags[PARTITION_RANGE_START]], position.get(tags[PARTITION_RANGE_END], -1)
            busy.update(registered[start : end + 1])
    return busy


def backfill_schedule(name, job, target: str, prerequisite: str | None, unpartitioned_prerequisites=(), cron="0 3 * * *"):
    @schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Nightly: range runs of {job.name} for registered shards without `{target}`"
        + (f" that already have `{prerequisite}`" if prerequisite else "") + ".",
    )
    def _schedule(context: ScheduleEvaluationContext):
        instance = context.instance
        missing_inputs = [key for key in unpartitioned_prerequisites
                          if instance.get_latest_materialization_event(AssetKey(key)) is None]
        if missing_inputs:
            return SkipReason(f"waiting for {', '.join(missing_inputs)}")
        registered = list(instance.get_dynamic_partitions(shard_partitions.name))
        ready = registered
        if prerequisite:
            have = instance.get_materialized_partitions(AssetKey(prerequisite))
            ready = [key for key in registered if key in have]
        ranges = missing_ranges(
            ready,
            done=instance.get_materialized_partitions(AssetKey(target)),
            in_flight=partitions_in_flight(context, job.name, registered),
            max_per_run=_settings.max_partitions_per_run,
            max_runs=200,
        )
        if not ranges:
            return SkipReason(f"nothing to do: {len(ready)} ready shards all have {target}")
        return [RunRequest(tags={PARTITION_RANGE_START: a, PARTITION_RANGE_END: b}) for a, b in ranges]

    return _schedule


shard_backfill_schedule = backfill_schedule("shard_backfill_schedule", shard_ingest_job, "samples", None)
detection_backfill_schedule = backfill_schedule(
    "detection_backfill_schedule", person_detection_job, "person_boxes", "samples", cron="0 4 * * *")
labels_backfill_schedule = backfill_schedule(
    "labels_backfill_schedule", person_labels_job, "person_captions", "person_boxes",
    unpartitioned_prerequisites=("gender_classifier", "race_classifier"), cron="0 5 * * *")

backfill_schedules = [shard_backfill_schedule, detection_backfill_schedule, labels_backfill_schedule]
