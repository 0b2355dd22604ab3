"""Shard ingestion: the `samples` asset and the discovery sensor."""

from typing import Literal

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    BackfillPolicy,
    Config,
    DefaultSensorStatus,
    MaterializeResult,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)

from laion_audit.defs.partitions import shard_partitions
from laion_audit.defs.resources import ShardInputsResource, ShardStoreResource
from laion_audit.defs.shard_runs import ShardOutcome, materialize_shards
from laion_audit.shards.image_check import DEFAULT_MAX_IMAGE_PIXELS
from laion_audit.shards.ingest import SAMPLES_ASSET, ingest_shard
from laion_audit.ops.settings import Settings
from laion_audit.shards.reader import ReaderOptions, ShardReadError
from laion_audit.shards.registration import new_shard_keys
from laion_audit.shards.sources import ShardDiscoveryError, ShardNotFoundError

SAMPLES_CODE_VERSION = "samples-1"
_settings = Settings.from_env()



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
    selection=AssetSelection.assets(samples) | AssetSelection.assets("alt_text_scores"),
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
