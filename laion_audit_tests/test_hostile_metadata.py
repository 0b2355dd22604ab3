"""Hostile metadata: one bad value makes one error row, never a failed shard or invalid UTF-8 in `samples`.

Every expectation below is written out by hand: the rows each shard must give, in order, with their status,
error_kind, error text and the coerced column values.
"""

import io
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_audit.shards.reader import (
    ReaderOptions,
    ShardReadError,
    ShardReadReport,
    iter_tar_samples,
    read_samples,
)
from laion_audit.shards.samples_schema import SAMPLES_SCHEMA
from laion_audit.shards.sources import ShardSource
from laion_audit.shards.store import ShardStore

from .dagster_harness import dagster_test_instance, definitions, register
from .shard_fixtures import good_sample, write_tar

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
STRING_COLUMNS = [f.name for f in SAMPLES_SCHEMA if f.type == pa.string()]


def _tables(path, fmt, key="00004", **options):
    report = ShardReadReport()
    tables = list(read_samples(ShardSource(key, fmt, str(path)), ReaderOptions(**options), report))
    return tables, report


def _assert_published_strings_are_utf8(table: pa.Table) -> None:
    assert table.schema.equals(SAMPLES_SCHEMA)
    for name in STRING_COLUMNS:
        for chunk in table.column(name).chunks:
            chunk.validate(full=True)  # raises ArrowInvalid on an invalid UTF-8 sequence


def _read(path, fmt="webdataset", key="00004", **options) -> list[dict]:
    tables, _ = _tables(path, fmt, key, **options)
    table = pa.concat_tables(tables)
    _assert_published_strings_are_utf8(table)
    for batch in tables:
        _assert_published_strings_are_utf8(batch)
    return table.to_pylist()


def _project(rows: list[dict], *columns: str) -> list[tuple]:
    return [(r["key"], r["status"], r["error_kind"], r["error"], *(r[c] for c in columns)) for r in rows]


# ------------------------------------------------------------------------------------------- webdataset json


def _with_json(key: str, raw: bytes) -> dict:
    sample = good_sample(key)
    sample["json"] = raw
    return sample


def _meta(key: str, **meta) -> dict:
    return good_sample(key, **meta)


DEEP = b'{"url": ' + b"[" * 10_000 + b"]" * 10_000 + b', "SAMPLE_ID": 11}'


def test_bad_json_values_become_error_rows_and_good_samples_stay_ok(tmp_path):
    samples = [
        _meta("000000000"),
        _meta("000000001", url=123),
        _meta("000000002", NSFW=["UNLIKELY"]),
        _meta("000000003", LICENSE={"name": "cc-by"}),
        _meta("000000004", LICENSE=True),
        _meta("000000005", SAMPLE_ID="abc"),
        _meta("000000006", SAMPLE_ID={"id": 6}),
        _meta("000000007"),
        _meta("000000008", width=[64]),
        _meta("000000009", similarity="high"),
        _with_json("000000010", b'{"url": "http://a/10.jpg", "SAMPLE_ID": 10, "similarity": 1e400}'),
        _with_json("000000011", DEEP),
        _with_json("000000012", b'{"url": "http://a/12.jpg", "SAMPLE_ID": 99999999999999999999}'),
        _with_json("000000013", b'{"url": "http://a/13.jpg", "SAMPLE_ID": 1e400}'),
        _with_json("000000014", b'{"url": "http\\ud800://a/14.jpg", "SAMPLE_ID": 14}'),
        _meta("000000015", url=5, SAMPLE_ID="x", NSFW=7.5),
        _meta("000000016", width=64.5),
        _meta("000000017", SAMPLE_ID="17", similarity=float("nan")),
        _meta("000000018"),
    ]
    rows = _read(write_tar(tmp_path / "00004.tar", samples))

    # Every key exactly once, in tar order.
    assert [r["key"] for r in rows] == [f"{i:09d}" for i in range(19)]
    url = "https://images.example.org/{}.jpg".format
    bad = "bad_metadata_value"
    assert _project(rows, "url", "sample_id", "nsfw", "license", "similarity", "width") == [
        ("000000000", "ok", None, None, url("000000000"), 0, "UNLIKELY", "?", 0.31, 64),
        ("000000001", "error", bad, ".json url: expected a string, got the number 123",
         None, 1, "UNLIKELY", "?", 0.31, 64),
        ("000000002", "error", bad, ".json NSFW: expected a string, got a list",
         url("000000002"), 2, None, "?", 0.31, 64),
        ("000000003", "error", bad, ".json LICENSE: expected a string, got an object",
         url("000000003"), 3, "UNLIKELY", None, 0.31, 64),
        ("000000004", "error", bad, ".json LICENSE: expected a string, got the boolean true",
         url("000000004"), 4, "UNLIKELY", None, 0.31, 64),
        ("000000005", "error", bad, ".json SAMPLE_ID: cannot read 'abc' as an integer",
         url("000000005"), None, "UNLIKELY", "?", 0.31, 64),
        ("000000006", "error", bad, ".json SAMPLE_ID: expected an integer, got an object",
         url("000000006"), None, "UNLIKELY", "?", 0.31, 64),
        ("000000007", "ok", None, None, url("000000007"), 7, "UNLIKELY", "?", 0.31, 64),
        # The width column comes from the decoded image; the json's list is still reported.
        ("000000008", "error", bad, ".json width: expected an integer, got a list",
         url("000000008"), 8, "UNLIKELY", "?", 0.31, 64),
        ("000000009", "error", bad, ".json similarity: cannot read 'high' as a number",
         url("000000009"), 9, "UNLIKELY", "?", None, 64),
        ("000000010", "error", bad, ".json similarity: the number 1e400 is out of the float64 range",
         "http://a/10.jpg", 10, None, None, None, 64),
        ("000000011", "error", "malformed_json", "malformed .json: nested too deeply to parse",
         None, None, None, None, None, 64),
        ("000000012", "error", bad, ".json SAMPLE_ID: the number 99999999999999999999 is out of the int64 range",
         "http://a/12.jpg", None, None, None, None, 64),
        ("000000013", "error", bad, ".json SAMPLE_ID: the number 1e400 is out of the int64 range",
         "http://a/13.jpg", None, None, None, None, 64),
        ("000000014", "error", bad, ".json url: not valid UTF-8: 'utf-8' codec can't encode character '\\ud800' "
         "in position 4: surrogates not allowed", None, 14, None, None, None, 64),
        # Several bad fields: the code once, one message per field in column order.
        ("000000015", "error", bad, ".json url: expected a string, got the number 5; "
         ".json SAMPLE_ID: cannot read 'x' as an integer; .json NSFW: expected a string, got the number 7.5",
         None, None, None, "?", 0.31, 64),
        ("000000016", "error", bad, ".json width: the number 64.5 is not a whole number",
         url("000000016"), 16, "UNLIKELY", "?", 0.31, 64),
        # Numbers written as text are read; NaN is a missing value, not an error.
        ("000000017", "ok", None, None, url("000000017"), 17, "UNLIKELY", "?", None, 64),
        ("000000018", "ok", None, None, url("000000018"), 18, "UNLIKELY", "?", 0.31, 64),
    ]
    # A metadata problem does not cost the sample its image or caption.
    assert all(r["has_image"] and r["caption"] == "a person on a beach" for r in rows)


def test_deep_nesting_in_a_tar_json_is_one_malformed_row_even_far_beyond_the_recursion_limit(tmp_path):
    deeper = b'{"a": ' + b'{"a": ' * 200_000 + b"1" + b"}" * 200_001
    path = write_tar(tmp_path / "00004.tar", [good_sample("000000000"), _with_json("000000001", deeper),
                                              good_sample("000000002")])
    rows = _read(path)
    assert _project(rows) == [
        ("000000000", "ok", None, None),
        ("000000001", "error", "malformed_json", "malformed .json: nested too deeply to parse"),
        ("000000002", "ok", None, None),
    ]


def test_a_json_integer_too_long_to_parse_is_a_malformed_row(tmp_path):
    huge = b'{"SAMPLE_ID": ' + b"9" * 5000 + b"}"
    rows = _read(write_tar(tmp_path / "00004.tar", [_with_json("000000001", huge)]))
    assert rows[0]["status"] == "error" and rows[0]["error_kind"] == "malformed_json"
    assert rows[0]["error"].startswith("malformed .json: Exceeds the limit (4300 digits)")
    assert rows[0]["sample_id"] is None and rows[0]["has_image"]


def test_a_non_utf8_member_name_keeps_its_sample_under_an_escaped_key(tmp_path):
    path = tmp_path / "00004.tar"
    good = good_sample("000000000")
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as tar:
        for key, sample in (("000000000", good), ("00000000\udcff", good_sample("000000001")),
                            ("000000002", good_sample("000000002"))):
            for ext in ("jpg", "txt", "json"):
                data = sample[ext] if isinstance(sample[ext], bytes) else sample[ext].encode()
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    rows = _read(path)
    assert _project(rows, "has_image") == [
        ("000000000", "ok", None, None, True),
        ("00000000\\xff", "error", "non_utf8_key",
         "tar member name is not valid UTF-8; the key keeps its bytes as \\x escapes", True),
        ("000000002", "ok", None, None, True),
    ]
    # Assets that re-read the pixels see the same keys.
    keys = [key for key, _ in iter_tar_samples(ShardSource("00004", "webdataset", str(path)), ShardReadReport())]
    assert keys == ["000000000", "00000000\\xff", "000000002"]


def test_the_tar_of_many_hostile_samples_keeps_every_key(tmp_path):
    hostile = [{"url": [1]}, {"NSFW": {}}, {"SAMPLE_ID": "abc"}, {"width": "wide"}, {"similarity": []}]
    samples = [_meta(f"{i:09d}", **hostile[i % len(hostile)]) if i % 3 else good_sample(f"{i:09d}")
               for i in range(60)]
    rows = _read(write_tar(tmp_path / "00004.tar", samples), batch_rows=7, workers=3)
    assert [r["key"] for r in rows] == [f"{i:09d}" for i in range(60)]
    for i, row in enumerate(rows):
        assert (row["status"], row["error_kind"]) == (("error", "bad_metadata_value") if i % 3 else ("ok", None))


# ------------------------------------------------------------------------------------------ metadata parquet


def _parquet(tmp_path, columns: dict, name="part-00004-x.parquet", row_group_size=None) -> str:
    path = tmp_path / name
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return str(path)


def _invalid_utf8_strings(values: list) -> pa.Array:
    """A string-typed array holding bytes that are not UTF-8 (arrow's view does not check, nor does parquet)."""
    return pa.array(values, pa.binary()).view(pa.string())


URLS = ["http://a/0.jpg", "http://a/1.jpg", "http://a/2.jpg", "http://a/3.jpg"]


@pytest.mark.parametrize("text_type", ["binary", "string"])
def test_metadata_text_that_is_not_utf8_is_one_non_utf8_caption_row(tmp_path, text_type):
    texts = [b"a nun", b"caf\xe9 au lait", None, b"\xff\xfe"]
    column = pa.array(texts, pa.binary()) if text_type == "binary" else _invalid_utf8_strings(texts)
    path = _parquet(tmp_path, {"SAMPLE_ID": [0, 1, 2, 3], "URL": URLS, "TEXT": column})
    rows = _read(path, fmt="metadata_parquet")
    assert _project(rows, "caption", "url", "sample_id") == [
        ("000000000", "ok", None, None, "a nun", URLS[0], 0),
        ("000000001", "error", "non_utf8_caption", "TEXT: not valid UTF-8: 'utf-8' codec can't decode byte 0xe9 "
         "in position 3: invalid continuation byte", None, URLS[1], 1),
        ("000000002", "error", "missing_caption", "TEXT is null", None, URLS[2], 2),
        ("000000003", "error", "non_utf8_caption", "TEXT: not valid UTF-8: 'utf-8' codec can't decode byte 0xff "
         "in position 0: invalid start byte", None, URLS[3], 3),
    ]


def test_metadata_binary_text_that_is_utf8_is_read_as_is(tmp_path):
    path = _parquet(tmp_path, {"URL": URLS[:2], "TEXT": pa.array(["café".encode(), b"x"], pa.binary())})
    assert _project(_read(path, fmt="metadata_parquet"), "caption") == [
        ("000000000", "ok", None, None, "café"), ("000000001", "ok", None, None, "x")]


def test_metadata_list_valued_text_is_an_error_row_per_list(tmp_path):
    path = _parquet(tmp_path, {"URL": URLS[:3], "TEXT": pa.array([["a", "nun"], None, []], pa.list_(pa.string()))})
    assert _project(_read(path, fmt="metadata_parquet"), "caption") == [
        ("000000000", "error", "bad_metadata_value", "TEXT: expected a string, got a list", None),
        ("000000001", "error", "missing_caption", "TEXT is null", None),
        ("000000002", "error", "bad_metadata_value", "TEXT: expected a string, got a list", None),
    ]


def test_metadata_numbers_written_as_text_are_read_and_bad_ones_are_error_rows(tmp_path):
    path = _parquet(tmp_path, {
        "SAMPLE_ID": ["10", "abc", " 12 ", None, "14"],
        "URL": URLS + ["http://a/4.jpg"],
        "TEXT": ["a", "b", "c", "d", "e"],
        "WIDTH": ["100", "101", "wide", "12.0", "12.5"],
        "HEIGHT": [50, 51, 52, 53, 54],
        "similarity": ["0.3", "x", "0.25", "1e400", "nan"],
        "NSFW": ["UNLIKELY"] * 5,
        "LICENSE": ["?"] * 5,
    })
    rows = _read(path, fmt="metadata_parquet")
    assert _project(rows, "sample_id", "width", "height", "similarity", "caption", "nsfw") == [
        ("000000000", "ok", None, None, 10, 100, 50, 0.3, "a", "UNLIKELY"),
        ("000000001", "error", "bad_metadata_value",
         "SAMPLE_ID: cannot read 'abc' as an integer; similarity: cannot read 'x' as a number",
         None, 101, 51, None, "b", "UNLIKELY"),
        ("000000002", "error", "bad_metadata_value", "WIDTH: cannot read 'wide' as an integer",
         12, None, 52, 0.25, "c", "UNLIKELY"),
        ("000000003", "error", "bad_metadata_value", "similarity: the string '1e400' is out of the float64 range",
         None, 12, 53, None, "d", "UNLIKELY"),
        ("000000004", "error", "bad_metadata_value", "WIDTH: the string '12.5' is not a whole number",
         14, None, 54, None, "e", "UNLIKELY"),
    ]


def test_metadata_numeric_columns_out_of_range_and_wrong_types(tmp_path):
    path = _parquet(tmp_path, {
        "SAMPLE_ID": pa.array([1, 2**64 - 1, 3, 4], pa.uint64()),
        "URL": pa.array([5, None, 7, 8], pa.int64()),
        "TEXT": ["a", "b", "c", "d"],
        "WIDTH": [100.0, float("nan"), float("inf"), 1e30],
        "similarity": [0.3, float("-inf"), 0.2, float("nan")],
        "NSFW": pa.array([None, {"v": "x"}, None, None], pa.struct([("v", pa.string())])),
        "LICENSE": [True, None, False, None],
    })
    rows = _read(path, fmt="metadata_parquet")
    assert _project(rows, "sample_id", "url", "width", "similarity", "nsfw", "license") == [
        ("000000000", "error", "bad_metadata_value",
         "URL: expected a string, got the number 5; LICENSE: expected a string, got the boolean true",
         1, None, 100, 0.3, None, None),
        ("000000001", "error", "missing_url,bad_metadata_value",
         "URL is null; SAMPLE_ID: the number 18446744073709551615 is out of the int64 range; "
         "NSFW: expected a string, got an object; similarity: the number -inf is not a finite number",
         None, None, None, None, None, None),
        ("000000002", "error", "bad_metadata_value",
         "URL: expected a string, got the number 7; LICENSE: expected a string, got the boolean false; "
         "WIDTH: the number inf is not a finite number", 3, None, None, 0.2, None, None),
        ("000000003", "error", "bad_metadata_value",
         "URL: expected a string, got the number 8; WIDTH: the number 1e+30 is out of the int64 range",
         4, None, None, None, None, None),
    ]


def test_clean_and_hostile_batches_in_one_file(tmp_path):
    """Small batches: clean ones take the vectorized path, the one with a bad value goes value by value."""
    n = 10
    text = [f"caption {i}".encode() for i in range(n)]
    text[7] = b"bad \xc3("
    path = _parquet(tmp_path, {
        "SAMPLE_ID": [str(i) for i in range(n - 1)] + ["nine"],
        "URL": [f"http://a/{i}.jpg" for i in range(n)],
        "TEXT": pa.array(text, pa.binary()),
        "WIDTH": [float(i) for i in range(n)],
        "similarity": [0.1] * n,
    }, row_group_size=4)
    rows = _read(path, fmt="metadata_parquet", batch_rows=3)
    assert [r["key"] for r in rows] == [f"{i:09d}" for i in range(n)]
    assert [r["sample_id"] for r in rows] == list(range(n - 1)) + [None]
    assert [r["width"] for r in rows] == list(range(n))
    assert {r["key"]: (r["error_kind"], r["error"]) for r in rows if r["status"] != "ok"} == {
        "000000007": ("non_utf8_caption", "TEXT: not valid UTF-8: 'utf-8' codec can't decode byte 0xc3 "
                      "in position 4: invalid continuation byte"),
        "000000009": ("bad_metadata_value", "SAMPLE_ID: cannot read 'nine' as an integer"),
    }
    assert all(r["caption"] == f"caption {i}" for i, r in enumerate(rows) if i != 7)


# ------------------------------------------------------------------------------------------------ end to end


def _hostile_metadata_parquet(path) -> None:
    pq.write_table(pa.table({
        "SAMPLE_ID": ["0", "abc", "2", "3", "4", "5"],
        "URL": ["http://a/0.jpg", "http://a/1.jpg", "http://a/2.jpg", None, "http://a/4.jpg", "http://a/5.jpg"],
        "TEXT": pa.array([b"a crime scene", b"caf\xe9 \xff", b"a happy family", b"a nun", None, b"desi wedding"],
                         pa.binary()),
        "WIDTH": ["640", "480", "wide", "100", "100", "100"],
        "HEIGHT": [480, 480, 480, 480, 480, 480],
        "similarity": ["0.3", "0.3", "0.3", "1e400", "0.3", "0.3"],
        "NSFW": ["UNLIKELY"] * 6,
        "LICENSE": ["?"] * 6,
    }), path)


def test_samples_and_alt_text_scores_materialize_on_hostile_metadata(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    _hostile_metadata_parquet(shards / "part-00007-hostile.snappy.parquet")
    store_root = tmp_path / "store"
    defs = definitions(shards, store_root)
    with dagster_test_instance() as instance:
        register(instance, ["00007"])
        result = defs.resolve_job_def("shard_ingest_job").execute_in_process(
            partition_key="00007", instance=instance, run_config=QUIET)
        assert result.success

    store = ShardStore(str(store_root))
    samples = store.read_table("samples", "00007")
    _assert_published_strings_are_utf8(samples.select(SAMPLES_SCHEMA.names).cast(SAMPLES_SCHEMA))
    assert _project(samples.to_pylist(), "caption", "sample_id", "width", "similarity") == [
        ("000000000", "ok", None, None, "a crime scene", 0, 640, 0.3),
        ("000000001", "error", "non_utf8_caption,bad_metadata_value",
         "SAMPLE_ID: cannot read 'abc' as an integer; TEXT: not valid UTF-8: 'utf-8' codec can't decode byte "
         "0xe9 in position 3: invalid continuation byte", None, None, 480, 0.3),
        ("000000002", "error", "bad_metadata_value", "WIDTH: cannot read 'wide' as an integer",
         "a happy family", 2, None, 0.3),
        ("000000003", "error", "missing_url,bad_metadata_value",
         "URL is null; similarity: the string '1e400' is out of the float64 range", "a nun", 3, 100, None),
        ("000000004", "error", "missing_caption", "TEXT is null", None, 4, 100, 0.3),
        ("000000005", "ok", None, None, "desi wedding", 5, 100, 0.3),
    ]

    scores = store.read_table("alt_text_scores", "00007").to_pylist()
    assert [(r["key"], r["status"], r["has_caption"]) for r in scores] == [
        ("000000000", "ok", True),
        ("000000001", "no_caption", False),
        ("000000002", "ok", True),
        ("000000003", "ok", True),
        ("000000004", "no_caption", False),
        ("000000005", "ok", True),
    ]
    assert [r["crime_match"] for r in scores] == [True, False, False, False, False, False]


def test_an_unreadable_parquet_page_fails_the_partition_naming_the_file(tmp_path):
    path = tmp_path / "part-00004-x.parquet"
    pq.write_table(pa.table({"URL": URLS * 500, "TEXT": ["caption"] * 2000}), path, row_group_size=500,
                   compression="none")
    data = bytearray(path.read_bytes())
    meta = pq.read_metadata(path)
    start = meta.row_group(2).column(1).data_page_offset
    data[start:start + 64] = b"\xff" * 64  # garble the TEXT page header of the third row group
    path.write_bytes(bytes(data))
    with pytest.raises(ShardReadError, match=r"part-00004-x\.parquet"):
        _tables(path, "metadata_parquet", batch_rows=500)

