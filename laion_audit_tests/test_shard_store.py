import json
import os
import stat

import pyarrow as pa
import pytest

from laion_audit.shards.recipe import Recipe
from laion_audit.shards.store import Provenance, ShardStore


def _recipe(code_version="v1", models=None, settings=None, upstream=None):
    return Recipe("things", code_version, models or {}, settings or {}, upstream or {})


def _prov(shard="00000", code_version="v1", models=None, run_id="run-1", **recipe):
    return Provenance(_recipe(code_version, models, **recipe), shard, run_id)


TABLE = pa.table({"key": ["a", "b"], "value": [1, 2]})


def test_write_publishes_data_marker_and_provenance(tmp_path):
    store = ShardStore(str(tmp_path))
    marker = store.write_table(_prov(models={"yolo": "abc"}), TABLE, marker_extra={"errors": 7})
    # Error counts come from the rows (a table without a status column has none), never from the caller.
    assert marker["rows"] == 2 and marker["errors"] == 0 and marker["models"] == {"yolo": "abc"}
    assert marker["package_version"] == "0.1.0" and "git_commit" in marker
    table = store.read_table("things", "00000")
    assert table.column("code_version").to_pylist() == ["v1", "v1"]
    assert table.column("run_id").to_pylist() == ["run-1", "run-1"]
    footer = ShardStore.read_provenance(store.data_path("things", "00000"))
    assert footer["code_version"] == "v1" and footer["models"] == {"yolo": "abc"} and footer["run_id"] == "run-1"
    assert set(store.complete_shards("things")) == {"00000"}


def test_completion_depends_on_every_part_of_the_recipe(tmp_path):
    store = ShardStore(str(tmp_path))
    made = dict(models={"yolo": "abc"}, settings={"conf": 0.25}, upstream={"samples": "d1"})
    store.write_table(_prov(**made), TABLE)
    assert store.complete_marker(_recipe(**made), "00000") is not None
    assert store.complete_marker(_recipe("v2", **made), "00000") is None
    assert store.complete_marker(_recipe(**{**made, "models": {"yolo": "def"}}), "00000") is None
    assert store.complete_marker(_recipe(**{**made, "settings": {"conf": 0.9}}), "00000") is None
    assert store.complete_marker(_recipe(**{**made, "upstream": {"samples": "d2"}}), "00000") is None
    assert store.complete_marker(_recipe(**made), "00001") is None


def test_marker_counts_statuses_from_the_rows(tmp_path):
    store = ShardStore(str(tmp_path))
    table = pa.table({"key": list("abcde"), "status": ["ok", "error", "upstream_error", "error", "no_image"]})
    marker = store.write_table(_prov(), table, marker_extra={"errors": 0})
    assert marker["errors"] == 2 and marker["upstream_errors"] == 1
    assert marker["status_counts"] == {"error": 2, "no_image": 1, "ok": 1, "upstream_error": 1}


def test_data_version_changes_with_recipe_or_output(tmp_path):
    store = ShardStore(str(tmp_path))
    first = store.write_table(_prov(settings={"t": 1}), TABLE)["data_version"]
    same_bytes_other_recipe = store.write_table(_prov(settings={"t": 2}), TABLE)["data_version"]
    other_bytes = store.write_table(_prov(settings={"t": 2}), pa.table({"key": ["a"], "value": [9]}))["data_version"]
    assert len({first, same_bytes_other_recipe, other_bytes}) == 3


def test_a_failed_write_leaves_no_file_and_keeps_the_previous_version(tmp_path):
    store = ShardStore(str(tmp_path))
    store.write_table(_prov(), TABLE)
    before = store.read_marker("things", "00000")
    with pytest.raises(RuntimeError, match="boom"):
        with store.writer(_prov(code_version="v2", run_id="run-2"), TABLE.schema) as out:
            out.write(TABLE)
            raise RuntimeError("boom")
    assert sorted(os.listdir(tmp_path / "things")) == sorted(["00000.complete.json", before["data_file"]])
    assert store.read_marker("things", "00000") == before
    assert store.read_table("things", "00000").column("run_id").to_pylist() == ["run-1", "run-1"]


def test_a_first_failed_write_leaves_nothing(tmp_path):
    store = ShardStore(str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        with store.writer(_prov(), TABLE.schema) as out:
            out.write(TABLE)
            raise KeyboardInterrupt
    assert os.listdir(tmp_path / "things") == []
    assert store.read_marker("things", "00000") is None


def test_restricted_outputs_are_owner_only(tmp_path):
    store = ShardStore(str(tmp_path))
    store.write_table(_prov(), TABLE, restricted=True)
    data = store.data_path("things", "00000", restricted=True)
    assert "/restricted/things/" in data
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "restricted").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "restricted" / "things").st_mode) == 0o700
    assert not (tmp_path / "things").exists()


def test_marker_records_content_hash(tmp_path):
    store = ShardStore(str(tmp_path))
    marker = store.write_table(_prov(), TABLE)
    import hashlib

    with open(store.data_path("things", "00000"), "rb") as handle:
        assert marker["data_sha256"] == hashlib.sha256(handle.read()).hexdigest()
    assert json.loads((tmp_path / "things" / "00000.complete.json").read_text())["shard"] == "00000"


def test_temp_files_of_killed_runs_are_listed_and_removed_but_not_a_live_writers(tmp_path):
    import time

    from laion_audit.ops.cli import main

    store = ShardStore(str(tmp_path))
    store.write_table(_prov(), TABLE)
    old = tmp_path / "things" / ".tmp-00000-deadbeef.parquet"
    old_marker = tmp_path / "things" / "00000.complete.json.tmp-cafe"
    live = tmp_path / "things" / ".tmp-00001-f00d.parquet"
    for path in (old, old_marker, live):
        path.write_bytes(b"partial")
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in (old, old_marker):
        os.utime(path, (two_days_ago, two_days_ago))
    assert [p for p, _ in store.leftover_temp_files()] == sorted([str(old), str(old_marker)])
    assert main(["store", "temp-files", "--store", str(tmp_path), "--remove"]) == 0
    assert not old.exists() and not old_marker.exists() and live.exists()
    assert store.read_table("things", "00000").num_rows == 2


@pytest.mark.parametrize("shard", ["../../etc", "0001", "00001/x", ""])
def test_a_shard_key_that_is_not_five_digits_never_reaches_a_path(tmp_path, shard):
    store = ShardStore(str(tmp_path))
    with pytest.raises(ValueError, match="shard keys are five digits"):
        store.write_table(_prov(shard=shard), TABLE)
    with pytest.raises(ValueError, match="shard keys are five digits"):
        store.read_marker("things", shard)
    assert not any(tmp_path.rglob("*"))
