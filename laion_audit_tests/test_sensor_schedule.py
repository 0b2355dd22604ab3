"""Discovery sensor (stable shards only, range runs), the chain sensor and the stale-aware nightly schedules."""

import os
import time

from dagster import RunRequest, SensorResult, build_schedule_context, build_sensor_context
from dataclasses import replace

from laion_audit.defs.partitions import shard_partitions
from laion_audit.shards.registration import missing_ranges, new_shard_keys, stable_keys

from .dagster_harness import (
    dagster_test_instance,
    definitions,
    register,
    registered_by,
    resources,
    settings_for,
    tick_discovery,
)
from .shard_fixtures import good_sample, write_tar

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _skip(result) -> str:
    reason = getattr(result, "skip_reason", None)
    return reason.skip_message if reason is not None else result.skip_message


def _ranges(requests):
    return [(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
            for r in requests]


def test_sensor_registers_new_shards_in_sorted_order_and_ignores_known(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    for key in ("00002", "00000", "00001"):
        write_tar(shards / f"{key}.tar", [good_sample(f"{key}0000")])
    with dagster_test_instance() as instance:
        first = tick_discovery(instance, shards, tmp_path / "store")
        assert isinstance(first, SensorResult)
        assert registered_by(first) == ["00000", "00001", "00002"]
        # One range run for the batch, not one run per shard.
        assert _ranges(first.run_requests) == [("00000", "00002")]
        assert [e.partition for e in first.asset_events] == ["00000", "00001", "00002"]

        again = tick_discovery(instance, shards, tmp_path / "store", cursor=first.cursor)
        assert _skip(again).startswith("no new stable shards")

        write_tar(shards / "00004.tar", [good_sample("000040000")])
        (shards / "part-00003-abc.snappy.parquet").write_bytes(b"")  # a late, lower-numbered metadata shard
        second = tick_discovery(instance, shards, tmp_path / "store", cursor=first.cursor)
        assert registered_by(second) == ["00003", "00004"]
        assert instance.get_dynamic_partitions(shard_partitions.name) == [
            "00000", "00001", "00002", "00003", "00004"]


def test_sensor_skips_when_the_root_is_missing(tmp_path):
    with dagster_test_instance() as instance:
        assert "does not exist" in tick_discovery(instance, tmp_path / "absent", tmp_path).skip_message


def test_stable_keys_wait_for_a_settled_file_unless_img2dataset_stats_are_there():
    settle = 60.0
    stable, pending = stable_keys({"00000": ("size=10", False), "00001": ("size=5", True)}, {}, 1000.0, settle)
    assert stable == ["00001"] and pending == {"00000": {"version": "size=10", "since": 1000.0}}
    # Still growing: the clock restarts.
    stable, pending = stable_keys({"00000": ("size=20", False)}, pending, 1070.0, settle)
    assert stable == [] and pending["00000"]["since"] == 1070.0
    # Unchanged, but not for long enough.
    stable, pending = stable_keys({"00000": ("size=20", False)}, pending, 1100.0, settle)
    assert stable == [] and pending["00000"]["since"] == 1070.0
    stable, pending = stable_keys({"00000": ("size=20", False)}, pending, 1130.0, settle)
    assert stable == ["00000"] and pending == {}


def test_a_shard_still_being_copied_is_not_registered_until_it_settles(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    full = tmp_path / "full.tar"
    write_tar(full, [good_sample(f"00000{i:04d}") for i in range(6)])
    data = full.read_bytes()
    target = shards / "00000.tar"
    target.write_bytes(data[: len(data) // 2])
    settings = replace(settings_for(shards, tmp_path / "store"), settle_seconds=0.5)
    with dagster_test_instance() as instance:
        first = tick_discovery(instance, shards, tmp_path / "store", settings=settings)
        assert registered_by(first) == [] and "1 waiting to settle" in _skip(first)
        with target.open("ab") as handle:  # the copy goes on
            handle.write(data[len(data) // 2:])
        os.utime(target, (time.time() + 5, time.time() + 5))
        time.sleep(0.6)
        second = tick_discovery(instance, shards, tmp_path / "store", cursor=first.cursor, settings=settings)
        assert registered_by(second) == []  # it changed since the last look: the clock restarted
        time.sleep(0.6)
        third = tick_discovery(instance, shards, tmp_path / "store", cursor=second.cursor, settings=settings)
        assert registered_by(third) == ["00000"]


def test_new_shard_keys_batches():
    assert new_shard_keys(["00003", "00001", "00002"], ["00002"], limit=1) == ["00001"]


def test_missing_ranges_groups_contiguous_missing_partitions():
    registered = [f"{i:05d}" for i in range(10)]
    assert missing_ranges(registered, done={"00002", "00003"}, in_flight={"00007"}, max_per_run=3,
                          max_runs=10) == [("00000", "00001"), ("00004", "00006"), ("00008", "00009")]
    assert missing_ranges(registered, done=set(), in_flight=set(), max_per_run=4, max_runs=2) == [
        ("00000", "00003"), ("00004", "00007")]


def _shards(tmp_path, keys):
    shards = tmp_path / "shards"
    shards.mkdir()
    for key in keys:
        write_tar(shards / f"{key}.tar", [good_sample(f"{key}0000")])
    return shards


def _schedule(defs, name, instance, shards, tmp_path):
    with build_schedule_context(instance=instance, resources=resources(shards, tmp_path / "store")) as context:
        result = defs.resolve_schedule_def(name)(context)
    return result if hasattr(result, "skip_message") else list(result)


def test_schedule_requests_range_runs_for_missing_shards(tmp_path):
    keys = [f"{i:05d}" for i in range(3)]
    shards = _shards(tmp_path, keys)
    defs = definitions(shards, tmp_path / "store")
    with dagster_test_instance() as instance:
        register(instance, keys)
        assert defs.resolve_job_def("shard_ingest_job").execute_in_process(
            partition_key="00001", instance=instance, run_config=QUIET).success
        requests = _schedule(defs, "shard_backfill_schedule", instance, shards, tmp_path)
        assert all(isinstance(r, RunRequest) for r in requests)
        assert _ranges(requests) == [("00000", "00000"), ("00002", "00002")]


def test_schedule_picks_up_a_stale_shard_and_the_chain_sensor_new_ones(tmp_path):
    keys = [f"{i:05d}" for i in range(3)]
    shards = _shards(tmp_path, keys)
    defs = definitions(shards, tmp_path / "store")
    with dagster_test_instance() as instance:
        register(instance, keys)
        assert "waiting for gender_classifier" in _schedule(
            defs, "labels_backfill_schedule", instance, shards, tmp_path).skip_message
        assert defs.resolve_job_def("shard_ingest_job").execute_in_process(
            instance=instance, run_config=QUIET,
            tags={"dagster/asset_partition_range_start": "00000", "dagster/asset_partition_range_end": "00002"}
        ).success
        assert "outputs are current" in _schedule(defs, "shard_backfill_schedule", instance, shards,
                                                  tmp_path).skip_message
        # Shard 00001 is rewritten after ingest (another sample): its samples are stale, and only it.
        write_tar(shards / "00001.tar", [good_sample("000010000"), good_sample("000010001")])
        os.utime(shards / "00001.tar", (time.time() + 10, time.time() + 10))
        assert _ranges(_schedule(defs, "shard_backfill_schedule", instance, shards, tmp_path)) == [
            ("00001", "00001")]

        # The chain sensor moves every ingested shard on to detection and to CLIP similarity, one range run each.
        with build_sensor_context(instance=instance, resources=resources(shards, tmp_path / "store")) as context:
            requests = defs.resolve_sensor_def("shard_chain_sensor")(context)
        assert [r.job_name for r in requests] == ["person_detection_job", "clip_similarity_job"]
        assert _ranges(requests) == [("00000", "00002"), ("00000", "00002")]


def test_observing_shard_files_records_each_files_version(tmp_path):
    keys = ["00000", "00001"]
    shards = _shards(tmp_path, keys)
    defs = definitions(shards, tmp_path / "store")
    with dagster_test_instance() as instance:
        register(instance, keys)
        assert defs.resolve_job_def("observe_shard_files_job").execute_in_process(
            instance=instance, run_config=QUIET).success
        from dagster import AssetKey

        for key in keys:
            stat = (shards / f"{key}.tar").stat()
            record = instance.get_latest_data_version_record(AssetKey("shard_files"), is_source=True,
                                                             partition_key=key)
            version = record.asset_observation.data_version
            assert version == f"size={stat.st_size};mtime={stat.st_mtime}"


def test_a_duplicate_shard_key_is_reported_and_skipped_while_the_rest_registers(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    for name in ("90015.tar", "090015.tar", "00001.tar"):
        write_tar(shards / name, [good_sample("000010000")])
    (shards / "notes.txt").write_text("not a shard")
    (shards / "readme.parquet").write_bytes(b"")
    with dagster_test_instance() as instance:
        result = tick_discovery(instance, shards, tmp_path / "store")
        assert registered_by(result) == ["00001"]
        later = tick_discovery(instance, shards, tmp_path / "store", cursor=result.cursor)
        message = _skip(later)
    assert "skipped shard keys claimed by several files: 90015 (090015.tar, 90015.tar)" in message
    assert "ignored 2 files: 1 not a .tar or .parquet, 1 without a shard number" in message
