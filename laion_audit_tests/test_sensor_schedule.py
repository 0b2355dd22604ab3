from dagster import RunRequest, SensorResult, build_schedule_context, build_sensor_context

from laion_audit.defs.partitions import shard_partitions
from laion_audit.defs.backfills import detection_backfill_schedule, labels_backfill_schedule, shard_backfill_schedule
from laion_audit.defs.shards import shard_discovery_sensor
from laion_audit.shards.registration import missing_ranges, new_shard_keys

from .dagster_harness import dagster_test_instance, definitions, register, resources
from .shard_fixtures import good_sample, write_tar


def _tick(instance, shards, tmp_path, cursor=None):
    with build_sensor_context(instance=instance, resources=resources(shards, tmp_path / "store"),
                              cursor=cursor) as context:
        return shard_discovery_sensor(context)


def _apply(instance, result):
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def test_sensor_registers_new_shards_in_sorted_order_and_ignores_known(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    for key in ("00002", "00000", "00001"):
        write_tar(shards / f"{key}.tar", [good_sample(f"{key}0000")])
    with dagster_test_instance() as instance:
        first = _tick(instance, shards, tmp_path)
        assert isinstance(first, SensorResult)
        assert list(first.dynamic_partitions_requests[0].partition_keys) == ["00000", "00001", "00002"]
        assert [r.partition_key for r in first.run_requests] == ["00000", "00001", "00002"]
        assert first.cursor == "00002"
        _apply(instance, first)

        assert _tick(instance, shards, tmp_path, cursor=first.cursor).skip_message.startswith("no new shards")

        write_tar(shards / "00004.tar", [good_sample("000040000")])
        (shards / "part-00003-abc.snappy.parquet").write_bytes(b"")  # a late, lower-numbered metadata shard
        second = _tick(instance, shards, tmp_path, cursor=first.cursor)
        assert list(second.dynamic_partitions_requests[0].partition_keys) == ["00003", "00004"]
        _apply(instance, second)
        assert instance.get_dynamic_partitions(shard_partitions.name) == [
            "00000", "00001", "00002", "00003", "00004"]


def test_sensor_skips_when_the_root_is_missing(tmp_path):
    with dagster_test_instance() as instance:
        assert "does not exist" in _tick(instance, tmp_path / "absent", tmp_path).skip_message


def test_new_shard_keys_batches():
    assert new_shard_keys(["00003", "00001", "00002"], ["00002"], limit=1) == ["00001"]


def test_missing_ranges_groups_contiguous_missing_partitions():
    registered = [f"{i:05d}" for i in range(10)]
    assert missing_ranges(registered, done={"00002", "00003"}, in_flight={"00007"}, max_per_run=3,
                          max_runs=10) == [("00000", "00001"), ("00004", "00006"), ("00008", "00009")]
    assert missing_ranges(registered, done=set(), in_flight=set(), max_per_run=4, max_runs=2) == [
        ("00000", "00003"), ("00004", "00007")]


def _three_shards(tmp_path, keys):
    shards = tmp_path / "shards"
    shards.mkdir()
    for key in keys:
        write_tar(shards / f"{key}.tar", [good_sample(f"{key}0000")])
    return shards


def test_schedule_requests_range_runs_for_unmaterialized_shards(tmp_path):
    keys = [f"{i:05d}" for i in range(3)]
    defs = definitions(_three_shards(tmp_path, keys), tmp_path / "store")
    with dagster_test_instance() as instance:
        register(instance, keys)
        assert defs.resolve_job_def("shard_ingest_job").execute_in_process(partition_key="00001",
                                                                           instance=instance).success
        with build_schedule_context(instance=instance) as context:
            requests = list(shard_backfill_schedule(context))
        assert all(isinstance(r, RunRequest) for r in requests)
        ranges = [(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
                  for r in requests]
        assert ranges == [("00000", "00000"), ("00002", "00002")]


def test_later_stages_wait_for_their_inputs(tmp_path):
    keys = [f"{i:05d}" for i in range(3)]
    defs = definitions(_three_shards(tmp_path, keys), tmp_path / "store")
    with dagster_test_instance() as instance:
        register(instance, keys)
        with build_schedule_context(instance=instance) as context:
            assert "nothing to do" in detection_backfill_schedule(context).skip_message
            assert "waiting for gender_classifier" in labels_backfill_schedule(context).skip_message
        for key in ("00000", "00001"):
            assert defs.resolve_job_def("shard_ingest_job").execute_in_process(partition_key=key,
                                                                               instance=instance).success
        with build_schedule_context(instance=instance) as context:
            requests = list(detection_backfill_schedule(context))
        assert [(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
                for r in requests] == [("00000", "00001")]
