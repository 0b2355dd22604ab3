"""Concurrent writers of one (asset, shard): two runs of the same partition must not corrupt the shard.

Every writer publishes a table whose ``writer`` column names its own run, so a marker describing another
writer's file is caught by content as well as by hash. The checks run after the race and, from a reader
thread, while it goes on.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
import time
import traceback
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

from laion_audit.shards import store as store_module
from laion_audit.shards.recipe import Recipe
from laion_audit.shards.store import Provenance, ShardStore

ASSET, SHARD = "things", "00000"
RECIPE = Recipe(ASSET, "v1", {"model": "abc"}, {"threshold": 0.5}, {"samples": "d1"})
PROCESSES, THREADS, ROUNDS = 4, 8, 8  # 256 publishes, 32 at a time, released together by a barrier


def _table(run_id: str) -> pa.Table:
    rows = 5 + sum(run_id.encode()) % 50  # files of different sizes, so writers finish at different times
    return pa.table({"writer": [run_id] * rows, "i": list(range(rows))})


def _publish_all(store: ShardStore, thread_ids: list[str], barrier: Any, out_markers: list, out_errors: list,
                 restricted: bool = False) -> None:
    """Threads that each publish ROUNDS tables, all threads starting each round together."""

    def publish(thread_id: str) -> None:
        for round_ in range(ROUNDS):
            run_id = f"{thread_id}-r{round_}"
            try:
                barrier.wait(timeout=120)
                out_markers.append(store.write_table(Provenance(RECIPE, SHARD, run_id), _table(run_id),
                                                     restricted=restricted))
            except BaseException:  # noqa: BLE001 - every failure is a finding
                out_errors.append(f"{run_id}: {traceback.format_exc()}")

    threads = [threading.Thread(target=publish, args=(thread_id,)) for thread_id in thread_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _publisher_process(root: str, process_index: int, barrier: Any, results: Any) -> None:
    markers: list[dict[str, Any]] = []
    errors: list[str] = []
    try:
        _publish_all(ShardStore(root), [f"p{process_index}-t{t}" for t in range(THREADS)], barrier, markers, errors)
    except BaseException:  # noqa: BLE001
        errors.append(traceback.format_exc())
    results.put((process_index, markers, errors))


def _sha256(store: ShardStore, path: str) -> str:
    with store.fs.open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _check_marker(store: ShardStore, marker: dict[str, Any], restricted: bool = False) -> list[str]:
    """Problems with one marker: it must name the file it describes, whose rows are its writer's."""
    problems = []
    run_id = marker["run_id"]
    path = store.data_path(ASSET, SHARD, restricted, marker)
    if marker.get("data_file") != ShardStore.data_file_name(SHARD, marker["data_sha256"]):
        problems.append(f"{run_id}: data_file {marker.get('data_file')} is not named by its hash")
    if _sha256(store, path) != marker["data_sha256"]:
        problems.append(f"{run_id}: data_sha256 does not match {path}")
    with store.fs.open(path, "rb") as handle:
        table = pq.read_table(handle)
    if set(table.column("writer").to_pylist()) != {run_id} or set(table.column("run_id").to_pylist()) != {run_id}:
        problems.append(f"{run_id}: its file holds rows of {set(table.column('writer').to_pylist())}")
    if marker["rows"] != table.num_rows:
        problems.append(f"{run_id}: marker says {marker['rows']} rows, file has {table.num_rows}")
    return problems


class _Reader(threading.Thread):
    """Reads the shard the way consumers do, as often as it can, until stopped; records every inconsistency.

    ``thorough`` readers check each marker's file by hash and content and read the table three ways; the
    others only check, in a tight loop, that the marker is always there once published and names an existing
    file by its own hash, to catch short windows.
    """

    def __init__(self, store: ShardStore, restricted: bool = False, thorough: bool = True):
        super().__init__(daemon=True)
        self.store, self.restricted, self.thorough = store, restricted, thorough
        self.stop = threading.Event()
        self.checks = 0
        self.problems: list[str] = []

    def run(self) -> None:
        seen_marker = False
        while not self.stop.is_set():
            try:
                marker = self.store.read_marker(ASSET, SHARD, self.restricted)
                if marker is None:
                    if seen_marker:
                        self.problems.append("the marker vanished during the race")
                    time.sleep(0.001)
                    continue
                seen_marker = True
                if self.thorough:
                    self._thorough(marker)
                else:
                    self._quick(marker)
                self.checks += 1
            except BaseException:  # noqa: BLE001
                self.problems.append(traceback.format_exc())

    def _quick(self, marker: dict[str, Any]) -> None:
        if marker.get("data_file") != ShardStore.data_file_name(SHARD, marker["data_sha256"]):
            self.problems.append(f"{marker['run_id']}: data_file {marker.get('data_file')} is not named by its hash")
        if not self.store.fs.exists(self.store.data_path(ASSET, SHARD, self.restricted, marker)):
            self.problems.append(f"{marker['run_id']}: the marker names a missing file")

    def _thorough(self, marker: dict[str, Any]) -> None:
        store, restricted = self.store, self.restricted
        self.problems += _check_marker(store, marker, restricted)
        pair_marker, table = store.read_published(ASSET, SHARD, restricted)
        if set(table.column("writer").to_pylist()) != {pair_marker["run_id"]}:
            self.problems.append(f"read_published paired {pair_marker['run_id']} with another table")
        before = store.read_marker(ASSET, SHARD, restricted)
        table = store.read_table(ASSET, SHARD, restricted)
        after = store.read_marker(ASSET, SHARD, restricted)
        writers = set(table.column("writer").to_pylist())
        if len(writers) != 1 or writers != set(table.column("run_id").to_pylist()):
            self.problems.append(f"read_table returned a mixed table: {writers}")
        elif before == after and writers != {before["run_id"]}:
            self.problems.append(f"read_table returned {writers} while the marker named {before['run_id']}")
        if store.complete_marker(RECIPE, SHARD, restricted) is None:
            self.problems.append("the shard was not complete for its recipe during the race")


def _start_readers(store: ShardStore, restricted: bool = False) -> list[_Reader]:
    readers = [_Reader(store, restricted, thorough=True), _Reader(store, restricted, thorough=False)]
    for reader in readers:
        reader.start()
    return readers


def _stop_readers(readers: list[_Reader]) -> None:
    for reader in readers:
        reader.stop.set()
    for reader in readers:
        reader.join(timeout=30)


def _assert_readers_saw_no_problem(readers: list[_Reader]) -> None:
    assert [problem for reader in readers for problem in reader.problems] == []
    assert all(reader.checks > 0 for reader in readers)


def _check_outcome(store: ShardStore, markers: list[dict[str, Any]], restricted: bool = False) -> None:
    run_ids = {marker["run_id"] for marker in markers}
    assert len(run_ids) == len(markers)
    # Every writer's own marker described its own file (no file is removed within the grace period).
    problems = [problem for marker in markers for problem in _check_marker(store, marker, restricted)]
    assert problems == []
    final = store.read_marker(ASSET, SHARD, restricted)
    assert final in markers  # whoever published last won, whole
    assert _check_marker(store, final, restricted) == []
    marker, table = store.read_published(ASSET, SHARD, restricted)
    assert marker == final and set(table.column("writer").to_pylist()) == {final["run_id"]}
    assert store.read_table(ASSET, SHARD, restricted).equals(table)
    assert store.complete_marker(RECIPE, SHARD, restricted) == final
    assert set(store.complete_shards(ASSET, restricted)) == {SHARD}
    assert store.data_path(ASSET, SHARD, restricted).endswith("/" + final["data_file"])
    directory = store._dir(ASSET, restricted)
    leftovers = [path for path in store.fs.ls(directory, detail=False) if ".tmp-" in path.rsplit("/", 1)[-1]]
    assert leftovers == []


def test_concurrent_publishes_from_processes_and_threads_leave_a_consistent_shard(tmp_path):
    root = str(tmp_path / "store")
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold other tests' threads
    barrier = context.Barrier(PROCESSES * THREADS)
    results = context.Queue()
    processes = [context.Process(target=_publisher_process, args=(root, index, barrier, results))
                 for index in range(PROCESSES)]
    store = ShardStore(root)
    for process in processes:
        process.start()
    readers = _start_readers(store)
    markers: list[dict[str, Any]] = []
    errors: list[str] = []
    try:
        for _ in processes:
            _, process_markers, process_errors = results.get(timeout=120)
            markers += process_markers
            errors += process_errors
    finally:
        _stop_readers(readers)
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert errors == []
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    assert len(markers) == PROCESSES * THREADS * ROUNDS
    _assert_readers_saw_no_problem(readers)
    _check_outcome(store, markers)


class _ThreadSafeMemoryFS(MemoryFileSystem):
    """The memory filesystem as an object store behaves: each open for reading gets its own handle.

    (fsspec's memory filesystem hands every reader the same file object, so concurrent readers would share
    one position; an object store's GETs are independent.) Protocol "memory": markers are one atomic PUT.
    """

    store: dict[str, Any] = {}
    pseudo_dirs = [""]

    def _open(self, path, mode="rb", **kwargs):
        if mode == "rb":
            path = self._strip_protocol(path)
            try:
                return MemoryFile(None, path, self.store[path].getvalue())
            except KeyError:
                raise FileNotFoundError(path) from None
        return super()._open(path, mode, **kwargs)


@pytest.mark.parametrize("restricted", [False, True])
def test_concurrent_publishes_on_an_object_store_leave_a_consistent_shard(restricted):
    store = ShardStore(f"memory://concurrency-{uuid.uuid4().hex}")
    store.fs = _ThreadSafeMemoryFS(skip_instance_cache=True)
    assert store._atomic_put and not store._is_local
    markers: list[dict[str, Any]] = []
    errors: list[str] = []
    readers = _start_readers(store, restricted)
    try:
        try:
            _publish_all(store, [f"t{t}" for t in range(THREADS)], threading.Barrier(THREADS), markers, errors,
                         restricted)
        finally:
            _stop_readers(readers)
        assert errors == []
        assert len(markers) == THREADS * ROUNDS
        _assert_readers_saw_no_problem(readers)
        _check_outcome(store, markers, restricted)
    finally:
        for path in list(_ThreadSafeMemoryFS.store):
            if path.startswith(store._root_path):
                del _ThreadSafeMemoryFS.store[path]


def test_concurrent_restricted_publishes_stay_owner_only(tmp_path):
    store = ShardStore(str(tmp_path))
    markers: list[dict[str, Any]] = []
    errors: list[str] = []
    _publish_all(store, [f"t{t}" for t in range(THREADS)], threading.Barrier(THREADS), markers, errors, True)
    assert errors == []
    _check_outcome(store, markers, restricted=True)
    directory = tmp_path / "restricted" / ASSET
    assert {oct(os.stat(path).st_mode & 0o777) for path in directory.iterdir()} == {oct(0o600)}
    assert oct(os.stat(directory).st_mode & 0o777) == oct(0o700)


# ------------------------------------------------------------------------------------------- cleanup, layout
def _age(path: str, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_data_files_are_content_addressed_and_old_unnamed_ones_are_removed(tmp_path):
    store = ShardStore(str(tmp_path))
    first = store.write_table(Provenance(RECIPE, SHARD, "run-1"), _table("run-1"))
    first_path = store.data_path(ASSET, SHARD)
    assert first_path == f"{tmp_path}/{ASSET}/{SHARD}.{first['data_sha256'][:16]}.parquet"
    # A young unnamed file stays: it may be a concurrent writer's that is about to be named.
    second = store.write_table(Provenance(RECIPE, SHARD, "run-2"), _table("run-2"))
    assert os.path.exists(first_path)
    # Once older than the grace period, the next publish removes it; never the file the marker names.
    _age(first_path, store_module.STALE_DATA_GRACE_S + 60)
    _age(store.data_path(ASSET, SHARD, marker=second), store_module.STALE_DATA_GRACE_S + 60)
    store.write_table(Provenance(RECIPE, SHARD, "run-2"), _table("run-2"))  # same bytes, same file
    assert not os.path.exists(first_path)
    assert sorted(os.listdir(tmp_path / ASSET)) == sorted([f"{SHARD}.complete.json", second["data_file"]])
    assert store.read_table(ASSET, SHARD).column("writer").to_pylist()[0] == "run-2"
    assert _check_marker(store, store.read_marker(ASSET, SHARD)) == []


def test_markers_without_a_data_file_read_the_old_layout(tmp_path):
    """Shards published before content-addressed names: the marker has no data_file; <shard>.parquet."""
    store = ShardStore(str(tmp_path))
    marker = store.write_table(Provenance(RECIPE, SHARD, "run-1"), _table("run-1"))
    directory = tmp_path / ASSET
    os.replace(directory / marker["data_file"], directory / f"{SHARD}.parquet")
    legacy = {key: value for key, value in marker.items() if key != "data_file"}
    (directory / f"{SHARD}.complete.json").write_text(json.dumps(legacy))
    assert store.data_path(ASSET, SHARD) == f"{directory}/{SHARD}.parquet"
    assert store.read_table(ASSET, SHARD).column("writer").to_pylist()[0] == "run-1"
    assert store.complete_marker(RECIPE, SHARD) == legacy
    assert ShardStore.read_provenance(store.data_path(ASSET, SHARD))["run_id"] == "run-1"
    # A new publish supersedes the old file, which goes once it is old.
    _age(str(directory / f"{SHARD}.parquet"), store_module.STALE_DATA_GRACE_S + 60)
    new = store.write_table(Provenance(RECIPE, SHARD, "run-2"), _table("run-2"))
    assert sorted(os.listdir(directory)) == sorted([f"{SHARD}.complete.json", new["data_file"]])
    # No marker at all: the old layout's path (nothing to read).
    assert store.data_path(ASSET, "00001") == f"{directory}/00001.parquet"
    assert store.read_marker(ASSET, "00001") is None


def test_a_reader_holding_an_old_marker_follows_the_new_one(tmp_path):
    store = ShardStore(str(tmp_path))
    old = store.write_table(Provenance(RECIPE, SHARD, "run-1"), _table("run-1"))
    new = store.write_table(Provenance(RECIPE, SHARD, "run-2"), _table("run-2"))
    os.remove(store.data_path(ASSET, SHARD, marker=old))  # as a cleanup between reading the marker and the file
    real_read_marker = store.read_marker
    calls = iter([old])

    def stale_first(*args, **kwargs):
        return next(calls, None) or real_read_marker(*args, **kwargs)

    store.read_marker = stale_first
    marker, table = store.read_published(ASSET, SHARD)
    assert marker == new and set(table.column("writer").to_pylist()) == {"run-2"}


def test_store_cleanup_never_raises(tmp_path, monkeypatch):
    store = ShardStore(str(tmp_path))
    monkeypatch.setattr(store.fs, "modified", lambda path: (_ for _ in ()).throw(OSError("no times here")))
    first = store.write_table(Provenance(RECIPE, SHARD, "run-1"), _table("run-1"))
    second = store.write_table(Provenance(RECIPE, SHARD, "run-2"), _table("run-2"))
    assert {first["data_file"], second["data_file"]} <= set(os.listdir(tmp_path / ASSET))  # unsure: both stay
    assert store.read_marker(ASSET, SHARD) == second
