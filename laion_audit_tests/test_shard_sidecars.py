"""img2dataset's sidecars say what a tar should hold; a tar cut short is reported, never read as complete.

A tar cut exactly at a 512-byte header boundary is a valid-looking archive without its end-of-archive marker.
The sidecar parquet (every key with its download status) and ``_stats.json`` (the counts) beside it tell which
keys should be there: each key listed as downloaded but absent from the tar becomes a ``missing_from_tar`` row,
and the `samples` marker records expected and read counts. Expectations are written out by hand.
"""

import io
import json
import re
import shutil
import tarfile
import types

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_audit.sample_data import write_webdataset_shard
from laion_audit.sample_data.generate import write_bad_shard
from laion_audit.sample_data.webdataset_writer import SAMPLE_SCHEMA
from laion_audit.shards import reader as reader_module
from laion_audit.shards.ingest import SAMPLES_ASSET, ingest_shard
from laion_audit.shards.reader import ReaderOptions, ShardReadReport, read_samples, stable_text
from laion_audit.shards.sources import ShardSource, locate_shard
from laion_audit.shards.store import ShardStore

from .shard_fixtures import good_sample, write_tar

KEYS = ["000010000", "000010001", "000010002", "000010003", "000010004", "000010005"]
MISSING = "not in the tar: img2dataset sidecar 00001.parquet lists it as downloaded"
MISSING_AT_END = MISSING + "; the tar ends before it"


def _read(source: ShardSource, **options) -> tuple[list[dict], ShardReadReport]:
    report = ShardReadReport()
    tables = list(read_samples(source, ReaderOptions(**options), report))
    return (pa.concat_tables(tables).to_pylist() if tables else []), report


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    """Six good samples (jpg, txt, json each) in 00001.tar with img2dataset's parquet and _stats.json."""
    root = tmp_path_factory.mktemp("sidecar_shard")
    write_webdataset_shard(root / "00001.tar", 1, len(KEYS), image_size=(32, 64))
    return root


def _copy_cut(shard, tmp_path, cut_at: int):
    root = tmp_path / "shards"
    shutil.copytree(shard, root)
    data = (root / "00001.tar").read_bytes()
    (root / "00001.tar").write_bytes(data[:cut_at])
    return root


def _member_offsets(path) -> tuple[list[tuple[str, int]], int]:
    """(member name, header offset) in tar order, and the offset of the end-of-archive marker."""
    with tarfile.open(path) as archive:
        members = archive.getmembers()
    end = members[-1].offset_data + (members[-1].size + 511) // 512 * 512
    return [(m.name, m.offset) for m in members], end


# (member the cut lands on, keys read from the tar, error_kind of the last key read)
HEADER_CUTS = [
    ("000010001.jpg", 1, None),  # between samples: the first sample is whole
    ("000010001.txt", 2, "missing_caption,missing_json,truncated_tar"),
    ("000010002.json", 3, "missing_json,truncated_tar"),
    ("000010004.txt", 5, "missing_caption,missing_json,truncated_tar"),
    ("000010005.jpg", 5, None),
]


@pytest.mark.parametrize(("member", "n_read", "last_kinds"), HEADER_CUTS)
def test_a_tar_cut_at_a_header_boundary_accounts_for_every_sidecar_key(shard, tmp_path, member, n_read, last_kinds):
    members, _ = _member_offsets(shard / "00001.tar")
    assert len(members) == 18 and members[0] == ("000010000.jpg", 0)
    offset = dict(members)[member]
    assert offset % 512 == 0
    root = _copy_cut(shard, tmp_path, offset)
    rows, report = _read(locate_shard(str(root), "00001"))

    read, missing = KEYS[:n_read], KEYS[n_read:]
    assert [r["key"] for r in rows] == read + missing  # conservation: every sidecar key exactly once
    assert [r["status"] for r in rows[: n_read - 1]] == ["ok"] * (n_read - 1)
    last = rows[n_read - 1]
    assert last["error_kind"] == last_kinds
    for row in rows[n_read:]:
        assert (row["status"], row["error_kind"], row["error"]) == ("error", "missing_from_tar", MISSING_AT_END)
        assert not row["has_image"] and row["image_member"] is None
    # What the tar lacks still carries its url, caption and SAMPLE_ID from the sidecar parquet.
    sidecar = {r["key"]: r for r in pq.read_table(shard / "00001.parquet").to_pylist()}
    for row in rows[n_read:]:
        expected = sidecar[row["key"]]
        assert (row["url"], row["caption"], row["sample_id"]) == (
            expected["url"], expected["caption"], expected["SAMPLE_ID"])

    before = members[members.index((member, offset)) - 1][0]
    no_marker = f"tar ends at byte {offset} without an end-of-archive marker, after member {before}"
    assert report.truncated == f"tar ends after {n_read} of 6 expected samples (img2dataset sidecar); {no_marker}"
    if last_kinds:
        assert last["error"].endswith(no_marker)
    fields = report.marker_fields()
    assert {k: fields[k] for k in ("expected_samples", "read_samples", "missing_from_tar", "not_in_sidecar",
                                   "ended_early", "sidecar_failed_downloads", "sidecar_error", "sidecars")} == {
        "expected_samples": 6, "read_samples": n_read, "missing_from_tar": 6 - n_read, "not_in_sidecar": 0,
        "ended_early": True, "sidecar_failed_downloads": 0, "sidecar_error": None,
        "sidecars": ["00001.parquet", "00001_stats.json"],
    }


def test_a_cut_at_the_end_of_archive_marker_keeps_every_sample_but_says_so(shard, tmp_path):
    members, end = _member_offsets(shard / "00001.tar")
    root = _copy_cut(shard, tmp_path, end)
    rows, report = _read(locate_shard(str(root), "00001"))
    assert [(r["key"], r["status"]) for r in rows] == [(k, "ok") for k in KEYS]
    assert report.truncated == f"tar ends at byte {end} without an end-of-archive marker, after member 000010005.json"
    assert (report.ended_early, report.missing_from_tar, report.read_samples) == (True, 0, 6)


def test_a_header_boundary_cut_is_reported_without_sidecars_too(shard, tmp_path):
    offset = dict(_member_offsets(shard / "00001.tar")[0])["000010003.jpg"]
    root = _copy_cut(shard, tmp_path, offset)
    rows, report = _read(ShardSource("00001", "webdataset", str(root / "00001.tar")))
    assert [(r["key"], r["status"]) for r in rows] == [(k, "ok") for k in KEYS[:3]]
    assert report.truncated == (
        f"tar ends at byte {offset} without an end-of-archive marker, after member 000010002.json")
    assert report.ended_early and report.expected_samples is None and report.sidecars == []


def test_a_tar_cut_inside_the_first_member_of_a_sample_gives_that_sample_its_row(shard, tmp_path):
    with tarfile.open(shard / "00001.tar") as archive:
        cut = archive.getmember("000010002.jpg")
    root = _copy_cut(shard, tmp_path, cut.offset_data + cut.size // 2)
    rows, report = _read(locate_shard(str(root), "00001"))
    assert [r["key"] for r in rows] == KEYS
    assert [r["status"] for r in rows[:2]] == ["ok", "ok"]
    reason = "tar ends inside member 000010002.jpg: unexpected end of data"
    assert (rows[2]["error_kind"], rows[2]["error"]) == ("truncated_tar", reason)
    sidecar = {r["key"]: r for r in pq.read_table(shard / "00001.parquet").to_pylist()}
    assert rows[2]["url"] == sidecar["000010002"]["url"] and rows[2]["caption"] == sidecar["000010002"]["caption"]
    assert [(r["error_kind"], r["error"]) for r in rows[3:]] == [("missing_from_tar", MISSING_AT_END)] * 3
    assert report.truncated == f"tar ends after 3 of 6 expected samples (img2dataset sidecar); {reason}"
    assert (report.read_samples, report.missing_from_tar) == (3, 3)


# --------------------------------------------------------------------------------- hand-written sidecars


def _sidecar_rows(*entries: tuple[str, str]) -> list[dict]:
    return [{"key": key, "status": status, "url": f"https://images.example.org/{key}.jpg",
             "caption": f"caption of {key}", "SAMPLE_ID": int(key),
             "error_message": None if status == "success" else "HTTP Error 404"} for key, status in entries]


def _write_sidecars(root, rows: list[dict], stats: dict | None) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA), root / "00002.parquet")
    if stats is not None:
        (root / "00002_stats.json").write_text(json.dumps(stats))


def test_failed_downloads_get_no_row_and_keys_missing_in_the_middle_do(tmp_path):
    root = tmp_path / "shards"
    root.mkdir()
    # The sidecar: 000000001 ok, 000000002 failed, 000000003 ok but absent, 000000004 ok, 000000005 failed.
    _write_sidecars(root, _sidecar_rows(("000000001", "success"), ("000000002", "failed_to_download"),
                                        ("000000003", "success"), ("000000004", "success"),
                                        ("000000005", "failed_to_resize")),
                    {"count": 5, "successes": 3, "failed_to_download": 1, "failed_to_resize": 1})
    # The tar: 000000001, 000000004, and 000000009 that the sidecar does not list.
    write_tar(root / "00002.tar", [good_sample("000000001"), good_sample("000000004"), good_sample("000000009")])
    rows, report = _read(locate_shard(str(root), "00002"))
    assert [(r["key"], r["status"], r["error_kind"], r["error"]) for r in rows] == [
        ("000000001", "ok", None, None),
        ("000000004", "ok", None, None),
        ("000000009", "ok", None, None),
        ("000000003", "error", "missing_from_tar",
         "not in the tar: img2dataset sidecar 00002.parquet lists it as downloaded"),
    ]
    assert (rows[3]["url"], rows[3]["caption"], rows[3]["sample_id"]) == (
        "https://images.example.org/000000003.jpg", "caption of 000000003", 3)
    fields = report.marker_fields()
    assert {k: fields[k] for k in ("truncated", "ended_early", "expected_samples", "read_samples",
                                   "missing_from_tar", "not_in_sidecar", "sidecar_failed_downloads",
                                   "sidecar_error")} == {
        "truncated": None, "ended_early": False, "expected_samples": 3, "read_samples": 3, "missing_from_tar": 1,
        "not_in_sidecar": 1, "sidecar_failed_downloads": 2, "sidecar_error": None,
    }


def test_unreadable_sidecars_are_recorded_and_never_fail_the_shard(tmp_path):
    root = tmp_path / "shards"
    root.mkdir()
    write_tar(root / "00002.tar", [good_sample("000000001"), good_sample("000000002")])
    (root / "00002.parquet").write_bytes(b"PAR1 but not really a parquet file")
    (root / "00002_stats.json").write_text('{"count": 2, "successes": ')
    rows, report = _read(locate_shard(str(root), "00002"))
    assert [(r["key"], r["status"]) for r in rows] == [("000000001", "ok"), ("000000002", "ok")]
    assert report.sidecar_error.startswith("cannot read 00002.parquet: ")
    assert "; cannot read 00002_stats.json: JSONDecodeError: Expecting value" in report.sidecar_error
    assert (report.expected_samples, report.missing_from_tar, report.not_in_sidecar) == (None, 0, None)
    assert (report.truncated, report.ended_early, report.sidecars) == (None, False, [])


def test_a_sidecar_parquet_without_a_key_column_falls_back_to_the_stats_counts(tmp_path):
    root = tmp_path / "shards"
    root.mkdir()
    write_tar(root / "00002.tar", [good_sample("000000001"), good_sample("000000002"), good_sample("000000003")])
    pq.write_table(pa.table({"url": ["a", "b"], "status": ["success", "success"]}), root / "00002.parquet")
    (root / "00002_stats.json").write_text(json.dumps({"count": 6, "successes": 5}))
    rows, report = _read(locate_shard(str(root), "00002"))
    assert [r["key"] for r in rows] == ["000000001", "000000002", "000000003"]
    assert report.sidecar_error == "00002.parquet has no key column; its keys are not used"
    assert (report.expected_samples, report.read_samples, report.sidecar_failed_downloads) == (5, 3, 1)
    assert report.ended_early
    assert report.truncated == "tar ends after 3 of 5 expected samples (img2dataset sidecar)"
    assert report.sidecars == ["00002_stats.json"]


def test_stats_that_disagree_with_the_parquet_are_noted(tmp_path):
    root = tmp_path / "shards"
    root.mkdir()
    _write_sidecars(root, _sidecar_rows(("000000001", "success")), {"count": 1, "successes": 4})
    write_tar(root / "00002.tar", [good_sample("000000001")])
    rows, report = _read(locate_shard(str(root), "00002"))
    assert [(r["key"], r["status"]) for r in rows] == [("000000001", "ok")]
    assert report.sidecar_error == "00002_stats.json counts 4 successes but 00002.parquet lists 1 keys as downloaded"
    assert (report.expected_samples, report.ended_early) == (1, False)


# ------------------------------------------------------------------------------ members and member names


def _add(archive: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if kind == tarfile.SYMTYPE:
        info.linkname = "000000001.jpg"
    archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def test_members_that_are_not_key_ext_are_counted_and_names_are_kept(tmp_path):
    first, second = good_sample("000000001"), good_sample("000000002")
    path = tmp_path / "00005.tar"
    with tarfile.open(path, "w") as archive:
        _add(archive, "images", kind=tarfile.DIRTYPE)
        _add(archive, "README", b"not a sample")
        _add(archive, "__meta__", b"webdataset metadata")
        _add(archive, ".hidden", b"x")
        _add(archive, "000000001.JPG", first["jpg"])
        _add(archive, "000000001.txt", first["txt"].encode())
        _add(archive, "000000001.json", first["json"])
        _add(archive, "link", kind=tarfile.SYMTYPE)
        _add(archive, "000000002.jpg", second["jpg"])
        _add(archive, "000000002.jpg", second["jpg"])  # the same member twice: the second replaces the first
        _add(archive, "000000002.txt", second["txt"].encode())
        _add(archive, "000000002.json", second["json"])
        _add(archive, "000000001.jpg", first["jpg"])  # the key again, after its sample was closed
    store = ShardStore(str(tmp_path / "store"))
    result = ingest_shard(ShardSource("00005", "webdataset", str(path)), store, run_id="run-1")
    rows = store.read_table(SAMPLES_ASSET, "00005").to_pylist()
    assert [(r["key"], r["image_member"], r["status"], r["error_kind"]) for r in rows] == [
        ("000000001", "000000001.JPG", "ok", None),
        ("000000002", "000000002.jpg", "ok", None),
        ("000000001~dup1", "000000001.jpg", "error", "missing_caption,missing_json,duplicate_key"),
    ]
    marker = result.marker
    assert marker["unrecognized_members"] == 5
    assert marker["unrecognized_member_examples"] == [
        "images (directory)", "README (not key.ext)", "__meta__ (webdataset metadata)", ".hidden (not key.ext)",
        "link (symlink)",
    ]
    assert (marker["duplicate_members"], marker["duplicate_member_examples"]) == (1, ["000000002.jpg"])
    assert (marker["read_samples"], marker["expected_samples"], marker["truncated"]) == (3, None, None)
    assert marker["ended_early"] is False


def test_more_than_ten_unrecognized_members_keep_ten_examples(tmp_path):
    path = tmp_path / "00005.tar"
    with tarfile.open(path, "w") as archive:
        for i in range(13):
            _add(archive, f"note{i:02d}", b"x")
        for ext, data in (("jpg", good_sample("000000001")["jpg"]), ("txt", b"a caption")):
            _add(archive, f"000000001.{ext}", data)
    rows, report = _read(ShardSource("00005", "webdataset", str(path)))
    assert [r["key"] for r in rows] == ["000000001"]
    assert report.unrecognized_members == 13
    assert report.unrecognized_member_examples == [f"note{i:02d} (not key.ext)" for i in range(10)]


# ------------------------------------------------------------------------------------------- determinism

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


def _published_rows(store: ShardStore, shard: str) -> bytes:
    table = store.read_table(SAMPLES_ASSET, shard)
    assert set(table.column("run_id").to_pylist()) <= {"run-a", "run-b"}
    return json.dumps(table.drop_columns(["run_id"]).to_pylist(), sort_keys=True).encode()


def test_the_same_bad_shard_gives_the_same_rows_in_every_run(tmp_path):
    write_bad_shard(tmp_path / "00003.tar", 3)
    source = ShardSource("00003", "webdataset", str(tmp_path / "00003.tar"))
    first, second = ShardStore(str(tmp_path / "a")), ShardStore(str(tmp_path / "b"))
    marker_a = ingest_shard(source, first, run_id="run-a", options=ReaderOptions(workers=1)).marker
    marker_b = ingest_shard(source, second, run_id="run-b", options=ReaderOptions(workers=4)).marker
    assert _published_rows(first, "00003") == _published_rows(second, "00003")
    errors = [r["error"] for r in first.read_table(SAMPLES_ASSET, "00003").to_pylist() if r["error"]]
    assert len(errors) == 9 and not [e for e in errors if _ADDRESS.search(e)]
    same = ("truncated", "error_kinds", "read_samples", "ended_early", "unrecognized_members")
    assert {k: marker_a[k] for k in same} == {k: marker_b[k] for k in same}


def test_error_texts_lose_memory_addresses(tmp_path, monkeypatch):
    # PIL says "cannot identify image file <_io.BytesIO object at 0x7f…>"; the address changes every run.
    def check_image(data, **_):
        return types.SimpleNamespace(ok=False, width=None, height=None, format=None, orientation=None,
                                     error_kind="corrupt_image",
                                     error=f"not a readable image: cannot identify image file {io.BytesIO(data)!r}")

    monkeypatch.setattr(reader_module, "check_image", check_image)
    path = write_tar(tmp_path / "00004.tar", [good_sample("000000001")])
    rows, _ = _read(ShardSource("00004", "webdataset", str(path)))
    assert rows[0]["error"] == "not a readable image: cannot identify image file <_io.BytesIO object>"
    assert stable_text("<PIL.Image.Image image mode=RGB size=1x1 at 0x7F3A2B1C4D50>") == (
        "<PIL.Image.Image image mode=RGB size=1x1>")
