"""Shard ingestion: the shard files as an observable source, the `samples` asset and the discovery sensor."""

import json
import time
from typing import Literal

from dagster import (
    AssetExecutionContext,
    AssetObservation,
    AssetSelection,
    BackfillPolicy,
    Config,
    DataVersionsByPartition,
    DefaultSensorStatus,
    Definitions,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    in_process_executor,
    observable_source_asset,
    sensor,
)

from laion_audit.defs.partitions import shard_partitions
from laion_audit.defs.resources import ShardInputsResource, ShardStoreResource
from laion_audit.defs.shard_runs import DATA_VERSION_TAG, ShardOutcome, materialize_shards
from laion_audit.ops.code_identity import code_identity_tags
from laion_audit.ops.settings import Settings
from laion_audit.shards.image_check import DEFAULT_MAX_IMAGE_PIXELS
from laion_audit.shards.ingest import SAMPLES_ASSET, ingest_shard
from laion_audit.shards.lineage import code_version
from laion_audit.shards.reader import ReaderOptions, ShardReadError
from laion_audit.shards.registration import new_shard_keys, stable_keys
from laion_audit.shards.sources import ShardDiscoveryError, ShardNotFoundError

SHARD_FILES = "shard_files"


class SamplesConfig(Config):
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    verify_images: Literal["decode", "header"] = "decode"
    force: bool = False


@observable_source_asset(
    name=SHARD_FILES,
    partitions_def=shard_partitions,
    group_name="shards",
    description="The input file of each shard (webdataset tar or metadata parquet). Data version = the file's "
    "ETag/version on an object store, size and mtime on disk: a file replaced after ingest makes `samples` stale.",
)
def shard_files(context, shard_inputs: ShardInputsResource) -> DataVersionsByPartition:
    registered = set(context.instance.get_dynamic_partitions(shard_partitions.name))
    found = shard_inputs.discover()
    return DataVersionsByPartition({key: source.version for key, source in found.items() if key in registered})


def build_shard_defs(settings: Settings) -> Definitions:
    @asset(
        deps=[SHARD_FILES],
        partitions_def=shard_partitions,
        code_version=code_version(SAMPLES_ASSET),
        group_name="shards",
        kinds={"parquet"},
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=settings.max_partitions_per_run),
        description="One row per sample key in the shard (image + alt-text + metadata), failures kept as rows "
        "with status, error_kind and error. Written to <store>/samples/<shard>.<sha16>.parquet, named by its marker.",
    )
    def samples(
        context: AssetExecutionContext,
        config: SamplesConfig,
        shard_store: ShardStoreResource,
        shard_inputs: ShardInputsResource,
    ):
        store = shard_store.store()
        options = ReaderOptions(max_image_pixels=config.max_image_pixels, verify_images=config.verify_images)

        def process(key: str) -> ShardOutcome:
            result = ingest_shard(shard_inputs.locate(key), store, run_id=context.run.run_id, options=options,
                                  force=config.force)
            return ShardOutcome(key, result.skipped, result.marker,
                                store.data_url(SAMPLES_ASSET, key, marker=result.marker))

        yield from materialize_shards(
            context,
            process,
            shard_errors=(ShardReadError, ShardNotFoundError, ShardDiscoveryError),
            totals=("rows", "errors", "images_ok"),
            single_shard_metadata=("source_format", "error_kinds", "truncated", "expected_samples", "missing_from_tar",
                                   "ended_early", "unrecognized_members"),
        )

    shard_ingest_job = define_asset_job(
        "shard_ingest_job",
        # The inputs_current checks are evaluated per partition on their own (range runs cannot carry them).
        selection=AssetSelection.assets(samples, "alt_text_scores", "keyword_counts").without_checks(),
        partitions_def=shard_partitions,
        # CPU work: every shard of a range run in the run's own process (one pod per run under Kubernetes,
        # not one per step), so 41,408 shards are ceil(41,408 / shards per run) pods.
        executor_def=in_process_executor,
        tags=code_identity_tags(),
        description="Everything computed per shard on CPU from the shard's own files.",
    )

    @sensor(
        job=shard_ingest_job,
        minimum_interval_seconds=settings.sensor_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Registers shards that appeared under the shard root as partitions once they are stable "
        "(img2dataset's _stats.json beside them, or the same size/mtime for the settle time), in sorted order "
        "and in batches, records each file's version as an observation of `shard_files`, and requests one "
        "range run of the ingest job for the new batch.",
    )
    def shard_discovery_sensor(context: SensorEvaluationContext, shard_inputs: ShardInputsResource):
        try:
            found, report = shard_inputs.scan()
        except FileNotFoundError as exc:
            return SkipReason(str(exc))
        if report.summary():
            context.log.warning(f"under {shard_inputs.root}: {report.summary()}")
        known = context.instance.get_dynamic_partitions(shard_partitions.name)
        candidates = new_shard_keys(found, known, limit=settings.register_batch)
        pending = json.loads(context.cursor)["pending"] if context.cursor else {}
        batch, pending = stable_keys(
            {key: (found[key].version, found[key].stats_url is not None) for key in candidates},
            pending, time.time(), settings.settle_seconds)
        cursor = json.dumps({"pending": pending}, sort_keys=True)
        if not batch:
            waiting = f"; {len(pending)} waiting to settle" if pending else ""
            notes = f"; {report.summary()}" if report.summary() else ""
            return SensorResult(skip_reason=f"no new stable shards under {shard_inputs.root} "
                                f"({len(known)} registered{waiting}){notes}", cursor=cursor)
        observations = [AssetObservation(asset_key=SHARD_FILES, partition=key,
                                         tags={DATA_VERSION_TAG: found[key].version or "unknown"}) for key in batch]
        return SensorResult(
            dynamic_partitions_requests=[shard_partitions.build_add_request(batch)],
            # One range run per batch (BackfillPolicy-sized): 41,408 shards are ~5k ingest runs, not 41k.
            run_requests=[
                RunRequest(run_key=f"ingest-{chunk[0]}-{chunk[-1]}", tags={**code_identity_tags(),
                           "dagster/asset_partition_range_start": chunk[0],
                           "dagster/asset_partition_range_end": chunk[-1]})
                for chunk in (batch[i:i + settings.max_partitions_per_run]
                              for i in range(0, len(batch), settings.max_partitions_per_run))
            ],
            asset_events=observations,
            cursor=cursor,
        )

    observe_shard_files_job = define_asset_job(
        "observe_shard_files_job", selection=AssetSelection.assets(SHARD_FILES),
        description="Record the current version of every registered shard file (a replaced file shows "
        "`samples` stale in the UI).")

    return Definitions(assets=[shard_files, samples], jobs=[shard_ingest_job, observe_shard_files_job],
                       sensors=[shard_discovery_sensor])
