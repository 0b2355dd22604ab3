"""Shard ingestion: the `samples` asset, the discovery sensor and the backfill schedule."""

from typing import Literal

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    BackfillPolicy,
    Config,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MaterializeResult,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    schedule,
    sensor,
)
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from laion_audit.defs.partitions import shard_partitions
from laion_audit.defs.resources import ShardInputsResource, ShardStoreResource
from laion_audit.defs.shard_runs import ShardOutcome, materialize_shards
from laion_audit.image_check import DEFAULT_MAX_IMAGE_PIXELS
from laion_audit.samples_ingest import SAMPLES_ASSET, ingest_shard
from laion_audit.settings import Settings
from laion_audit.shard_reader import ReaderOptions, ShardReadError
from laion_audit.shard_registration import missing_ranges, new_shard_keys
from laion_audit.shard_sources import ShardDiscoveryError, ShardNotFoundError

SAMPLES_CODE_VERSION = "samples-1"
_settings = Settings.from_env()

PARTITION_RANGE_START = "dagster/asset_partition_range_start"
PARTITION_RANGE_END = "dagster/asset_partition_range_end"


class SamplesConfig(Config):
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    verify_images: Literal["decode", "header"] = "decode"
    force: bool = False


@asset(
    partitions_def=shard_partitions,
    code_version=SAMPLES_CODE_VERSION,
    group_name="shards",
    kinds={"parquet"},
    backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=_settings.max_partitions_per_run),
    description="One row per sample key in the shard (image + alt-text + metadata), failures kept as rows "
    "with status, error_kind and error. Written to <store>/samples/<shard>.parquet.",
)
def samples(
    context: AssetExecutionContext,
    config: SamplesConfig,
    shard_store: ShardStoreResource,
    shard_inputs: ShardInputsResource,
) -> MaterializeResult:
    store = shard_store.store()
    options = ReaderOptions(max_image_pixels=config.max_image_pixels, verify_images=config.verify_images)

    def process(key: str) -> ShardOutcome:
        result = ingest_shard(
            shard_inputs.locate(key), store, code_version=SAMPLES_CODE_VERSION, run_id=context.run.run_id,
            options=options, force=config.force,
        )
        return ShardOutcome(key, result.skipped, result.marker, store.data_url(SAMPLES_ASSET, key))

    return materialize_shards(
        context,
        process,
        shard_errors=(ShardReadError, ShardNotFoundError, ShardDiscoveryError),
        totals=("rows", "errors", "images_ok"),
        single_shard_metadata=("source_format", "error_kinds", "truncated"),
    )


shard_ingest_job = define_asset_job(
    "shard_ingest_job",
    selection=AssetSelection.assets(samples),
    partitions_def=shard_partitions,
    description="Everything computed per shard on CPU from the shard's own files.",
)


@sensor(
    job=shard_ingest_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Registers shards that appeared under the shard root as partitions, in sorted order and in "
    "batches, and requests an ingest run for each.",
)
def shard_discovery_sensor(context: SensorEvaluationContext, shard_inputs: ShardInputsResource):
    try:
        found = shard_inputs.discover()
    except FileNotFoundError as exc:
        return SkipReason(str(exc))
    known = context.instance.get_dynamic_partitions(shard_partitions.name)
    batch = new_shard_keys(found, known, limit=_settings.register_batch)
    if not batch:
        return SkipReason(f"no new shards under {shard_inputs.root} ({len(known)} registered)")
    return SensorResult(
        dynamic_partitions_requests=[shard_partitions.build_add_request(batch)],
        run_requests=[RunRequest(partition_key=key, run_key=f"ingest-{key}") for key in batch],
        cursor=batch[-1],
    )


def _partitions_in_flight(context: ScheduleEvaluationContext, registered: list[str]) -> set[str]:
    position = {key: i for i, key in enumerate(registered)}
    busy: set[str] = set()
    records = context.instance.get_run_records(
        RunsFilter(job_name=shard_ingest_job.name, statuses=list(IN_PROGRESS_RUN_STATUSES))
    )
    for record in records:
        tags = record.dagster_run.tags
        if "dagster/partition" in tags:
            busy.add(tags["dagster/partition"])
        elif PARTITION_RANGE_START in tags and tags[PARTITION_RANGE_START] in position:
            start, end = position[tags[PARTITION_RANGE_START]], position.get(tags[PARTITION_RANGE_END], -1)
            busy.update(registered[start : end + 1])
    return busy


@schedule(
    job=shard_ingest_job,
    cron_schedule="0 3 * * *",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Nightly backfill: every registered shard without a `samples` materialization gets a run, "
    "grouped into multi-shard runs over contiguous ranges.",
)
def shard_backfill_schedule(context: ScheduleEvaluationContext):
    registered = list(context.instance.get_dynamic_partitions(shard_partitions.name))
    done = context.instance.get_materialized_partitions(samples.key)
    ranges = missing_ranges(
        registered,
        done=done,
        in_flight=_partitions_in_flight(context, registered),
        max_per_run=_settings.max_partitions_per_run,
        max_runs=200,
    )
    if not ranges:
        return SkipReason(f"all {len(registered)} registered shards have samples")
    return [
        RunRequest(tags={PARTITION_RANGE_START: first, PARTITION_RANGE_END: last}) for first, last in ranges
    ]
