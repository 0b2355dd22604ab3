import json
import shutil
import tarfile

import pytest
from dagster import AssetKey

from laion_audit.shards.ingest import SAMPLES_ASSET
from laion_audit.shards.store import ShardStore

from .dagster_harness import definitions, register, dagster_test_instance
from .shard_fixtures import good_sample, write_tar


@pytest.fixture
def shards(tmp_path, sample_shards):
    root = tmp_path / "shards"
    shutil.copytree(sample_shards, root)
    return root


def _keys_in_tar(path) -> list[str]:
    keys = []
    try:
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                key = member.name.split(".", 1)[0]
                if not keys or keys[-1] != key:
                    keys.append(key)
    except tarfile.ReadError:
        pass
    return keys


def test_materialize_two_partitions_in_process(shards, tmp_path):
    store_root = tmp_path / "store"
    defs = definitions(shards, store_root)
    job = defs.resolve_job_def("shard_ingest_job")
    with dagster_test_instance() as instance:
        register(instance, ["00000", "00001"])
        for key in ("00000", "00001"):
            result = job.execute_in_process(partition_key=key, instance=instance)
            assert result.success
            materialization = result.asset_materializations_for_node("samples")[0]
            assert materialization.partition == key
            assert materialization.metadata["rows"].value > 0
        assert instance.get_materialized_partitions(AssetKey("samples")) == {"00000", "00001"}
    store = ShardStore(str(store_root))
    assert set(store.complete_shards(SAMPLES_ASSET)) == {"00000", "00001"}


def test_every_key_read_appears_exactly_once(shards, tmp_path):
    """Conservation: each sample key of each shard has one row in `samples`, whatever its state."""
    store_root = tmp_path / "store"
    defs = definitions(shards, store_root)
    job = defs.resolve_job_def("shard_ingest_job")
    manifest = json.loads((shards / "manifest.json").read_text())
    bad_shard = next(iter(manifest["bad_samples"].values()))[:5]
    tar_keys = sorted(p.stem for p in shards.glob("*.tar"))
    assert bad_shard in tar_keys
    with dagster_test_instance() as instance:
        register(instance, tar_keys)
        for key in tar_keys:
            assert job.execute_in_process(partition_key=key, instance=instance).success
    for key in tar_keys:
        table = ShardStore(str(store_root)).read_table("samples", key)
        keys = table.column("key").to_pylist()
        assert len(keys) == len(set(keys))
        assert sorted(keys) == sorted(_keys_in_tar(shards / f"{key}.tar"))
    bad_rows = ShardStore(str(store_root)).read_table("samples", bad_shard).to_pylist()
    errors = {row["key"]: row for row in bad_rows if row["status"] == "error"}
    assert set(manifest["bad_samples"].values()) <= set(errors)
    assert all(row["error"] for row in errors.values())


def test_text_only_shard_materializes(shards, tmp_path):
    manifest = json.loads((shards / "manifest.json").read_text())
    text_shard = next(k for k, v in manifest["shards"].items() if v["format"] == "metadata_parquet")
    defs = definitions(shards, tmp_path / "store")
    with dagster_test_instance() as instance:
        register(instance, [text_shard])
        result = defs.resolve_job_def("shard_ingest_job").execute_in_process(partition_key=text_shard,
                                                                              instance=instance)
    assert result.success
    table = ShardStore(str(tmp_path / "store")).read_table("samples", text_shard)
    assert set(table.column("source_format").to_pylist()) == {"metadata_parquet"}


def test_rerun_skips_complete_shards_and_redoes_others(shards, tmp_path):
    store_root = tmp_path / "store"
    defs = definitions(shards, store_root)
    job = defs.resolve_job_def("shard_ingest_job")
    store = ShardStore(str(store_root))
    with dagster_test_instance() as instance:
        register(instance, ["00000", "00001"])
        first = job.execute_in_process(partition_key="00000", instance=instance)
        marker = store.read_marker(SAMPLES_ASSET, "00000")
        assert marker["run_id"] == first.run_id
        again = job.execute_in_process(partition_key="00000", instance=instance)
        assert again.success
        assert store.read_marker(SAMPLES_ASSET, "00000")["run_id"] == first.run_id
        assert again.asset_materializations_for_node("samples")[0].metadata["skipped_complete"].value is True
        # A marker from another recipe (here: another code version) does not count as complete.
        stale = dict(marker, recipe={**marker["recipe"], "code_version": "samples-0"}, recipe_sha256="0" * 64)
        (store_root / "samples" / "00000.complete.json").write_text(json.dumps(stale))
        third = job.execute_in_process(partition_key="00000", instance=instance)
        assert store.read_marker(SAMPLES_ASSET, "00000")["run_id"] == third.run_id


def test_an_unreadable_shard_fails_only_its_partition(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    write_tar(shards / "00000.tar", [good_sample("000000000")])
    (shards / "00001.tar").write_bytes(b"definitely not a tar" * 100)
    defs = definitions(shards, tmp_path / "store")
    job = defs.resolve_job_def("shard_ingest_job")
    with dagster_test_instance() as instance:
        register(instance, ["00000", "00001"])
        bad = job.execute_in_process(partition_key="00001", instance=instance, raise_on_error=False)
        good = job.execute_in_process(partition_key="00000", instance=instance)
    assert not bad.success and good.success
    failure = next(e for e in bad.all_events if e.is_step_failure)
    assert "00001.tar" in str(failure.step_failure_data.user_failure_data.description)
    store = ShardStore(str(tmp_path / "store"))
    assert store.read_marker("samples", "00001") is None
    assert not list((tmp_path / "store" / "samples").glob("00001.*"))
    assert store.fs.exists(store.data_path("samples", "00000"))


def test_a_multi_shard_run_finishes_good_shards_and_names_the_bad_file(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    for key in ("00000", "00002"):
        write_tar(shards / f"{key}.tar", [good_sample(f"{key}0000")])
    (shards / "00001.tar").write_bytes(b"\x00" * 10)
    defs = definitions(shards, tmp_path / "store")
    job = defs.resolve_job_def("shard_ingest_job")
    with dagster_test_instance() as instance:
        register(instance, ["00000", "00001", "00002"])
        result = job.execute_in_process(
            instance=instance, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": "00000", "dagster/asset_partition_range_end": "00002"},
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "00001.tar" in str(failure.step_failure_data.user_failure_data.description)
    assert sorted(ShardStore(str(tmp_path / "store")).complete_shards(SAMPLES_ASSET)) == ["00000", "00002"]


def test_a_bad_shard_in_the_middle_of_a_range_run_hides_none_of_its_neighbours(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    write_tar(shards / "00000.tar", [good_sample("000000000")])
    (shards / "00001.tar").write_bytes(b"definitely not a tar" * 100)
    write_tar(shards / "00002.tar", [good_sample("000020000"), good_sample("000020001")])
    defs = definitions(shards, tmp_path / "store")
    with dagster_test_instance() as instance:
        register(instance, ["00000", "00001", "00002"])
        result = defs.resolve_job_def("shard_ingest_job").execute_in_process(
            instance=instance, raise_on_error=False, asset_selection=[AssetKey("samples")],
            tags={"dagster/asset_partition_range_start": "00000", "dagster/asset_partition_range_end": "00002"})
        assert not result.success
        assert instance.get_materialized_partitions(AssetKey("samples")) == {"00000", "00002"}
    failure = next(e for e in result.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("shard 00001:") and "00001.tar" in description
    assert "00000" not in description and "00002" not in description
    store = ShardStore(str(tmp_path / "store"))
    assert store.read_marker(SAMPLES_ASSET, "00002")["rows"] == 2
