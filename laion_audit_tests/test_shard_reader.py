import io
import json
import struct
import tarfile
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_audit.shards.samples_schema import SAMPLES_SCHEMA
from laion_audit.shards.reader import ReaderOptions, ShardReadError, ShardReadReport, read_samples
from laion_audit.shards.sources import ShardSource

from .shard_fixtures import good_sample, jpeg_bytes, write_tar


def _read(path, fmt="webdataset", key="00000", **options):
    report = ShardReadReport()
    tables = list(read_samples(ShardSource(key, fmt, str(path)), ReaderOptions(**options), report))
    rows = pa.concat_tables(tables).to_pylist() if tables else []
    return {row["key"]: row for row in rows}, report


def _bomb_png(width=15000, height=15000) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = zlib.compress(b"\x00" * ((width + 7) // 8 + 1) * height, 9)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_good_samples_read_with_metadata(tmp_path):
    path = write_tar(tmp_path / "00000.tar", [good_sample("000000000"), good_sample("000000001", "two people")])
    rows, report = _read(path)
    assert list(rows) == ["000000000", "000000001"]
    row = rows["000000001"]
    assert row["status"] == "ok" and row["error"] is None and row["has_image"]
    assert row["caption"] == "two people"
    assert (row["width"], row["height"]) == (64, 48)
    assert row["nsfw"] == "UNLIKELY" and row["similarity"] == pytest.approx(0.31) and row["license"] == "?"
    assert row["sample_id"] == 1 and row["image_format"] == "JPEG" and len(row["sha256"]) == 64
    assert report.truncated is None


@pytest.mark.parametrize(
    ("mutate", "kind", "reason"),
    [
        (lambda s: s.update(jpg=b"\xff\xd8\xff" + b"garbage" * 50), "corrupt_image", "not a readable image"),
        (lambda s: s.update(jpg=jpeg_bytes((400, 300))[:900]), "truncated_image", "truncated"),
        (lambda s: (s.pop("jpg"), s.update(png=_bomb_png())), "decompression_bomb", "225000000 pixels"),
        (lambda s: s.pop("txt"), "missing_caption", "no .txt"),
        (lambda s: s.update(txt="caf\xe9 \xff".encode("latin-1")), "non_utf8_caption", "not valid UTF-8"),
        (lambda s: s.pop("json"), "missing_json", "no .json"),
        (lambda s: s.update(json=b'{"url": "http://x'), "malformed_json", "malformed .json"),
        (lambda s: s.pop("jpg"), "missing_image", "no image member"),
        (lambda s: s.update(json=json.dumps({"sha256": "0" * 64}).encode()), "sha256_mismatch", "differs"),
    ],
)
def test_each_bad_sample_becomes_an_error_row(tmp_path, mutate, kind, reason):
    bad = good_sample("000000001")
    mutate(bad)
    path = write_tar(tmp_path / "00000.tar", [good_sample("000000000"), bad, good_sample("000000002")])
    rows, _ = _read(path)
    assert list(rows) == ["000000000", "000000001", "000000002"]
    assert rows["000000000"]["status"] == rows["000000002"]["status"] == "ok"
    row = rows["000000001"]
    assert row["status"] == "error"
    assert row["error_kind"] == kind
    assert reason in row["error"]


def test_non_utf8_caption_keeps_the_image(tmp_path):
    bad = good_sample("000000001")
    bad["txt"] = b"\xff\xfe"
    rows, _ = _read(write_tar(tmp_path / "00000.tar", [bad]))
    assert rows["000000001"]["has_image"] and rows["000000001"]["caption"] is None


def test_truncated_tar_yields_complete_samples_and_records_truncation(tmp_path):
    path = write_tar(tmp_path / "00000.tar", [good_sample(f"00000000{i}") for i in range(4)])
    last_member = tarfile.open(path).getmembers()[-1]
    # Cut inside the data of the last member of the last sample.
    path.write_bytes(path.read_bytes()[: last_member.offset_data + last_member.size // 2])
    rows, report = _read(path)
    assert report.truncated and "tar ends" in report.truncated
    assert [rows[k]["status"] for k in sorted(rows)][:3] == ["ok", "ok", "ok"]
    last = rows["000000003"]
    assert last["status"] == "error" and "truncated_tar" in last["error_kind"]


def test_an_unopenable_file_raises_naming_the_file(tmp_path):
    path = tmp_path / "00009.tar"
    path.write_bytes(b"this is not a tar archive at all" * 40)
    with pytest.raises(ShardReadError, match="00009.tar"):
        _read(path)
    empty = tmp_path / "00010.tar"
    empty.write_bytes(b"")
    with pytest.raises(ShardReadError, match="00010.tar"):
        _read(empty)
    with pytest.raises(ShardReadError, match="00011.tar"):
        _read(tmp_path / "00011.tar")


def test_duplicate_keys_are_kept_apart(tmp_path):
    path = write_tar(tmp_path / "00000.tar", [good_sample("000000001"), good_sample("000000002"),
                                              good_sample("000000001")])
    rows, _ = _read(path)
    assert len(rows) == 3
    dup = [r for k, r in rows.items() if k.startswith("000000001~")][0]
    assert dup["error_kind"] == "duplicate_key"


def test_header_only_verification_misses_truncation_that_decode_catches(tmp_path):
    bad = good_sample("000000001")
    bad["jpg"] = jpeg_bytes((400, 300))[:900]
    path = write_tar(tmp_path / "00000.tar", [bad])
    assert _read(path, verify_images="header")[0]["000000001"]["status"] == "ok"
    assert _read(path, verify_images="decode")[0]["000000001"]["status"] == "error"


def test_pixel_limit_is_configurable(tmp_path):
    path = write_tar(tmp_path / "00000.tar", [good_sample("000000001")])
    rows, _ = _read(path, max_image_pixels=1000)
    assert rows["000000001"]["error_kind"] == "decompression_bomb"


def _metadata(tmp_path, columns: dict) -> str:
    path = tmp_path / "part-00004-x.parquet"
    pq.write_table(pa.table(columns), path)
    return str(path)


def test_metadata_parquet_with_laion_columns_matched_case_insensitively(tmp_path):
    path = _metadata(tmp_path, {
        "SAMPLE_ID": [10, 11, 12], "URL": ["http://a/1.jpg", "http://a/2.jpg", None],
        "TEXT": ["a nun", None, "desi wedding"], "LICENSE": ["?", "?", "?"],
        "NSFW": ["UNLIKELY", "NSFW", "UNSURE"], "similarity": [0.3, 0.4, 0.35],
        "WIDTH": [100, 200, 300], "HEIGHT": [50, 60, 70],
    })
    rows, _ = _read(path, fmt="metadata_parquet", key="00004", batch_rows=2)
    assert list(rows) == ["000000000", "000000001", "000000002"]
    assert rows["000000000"]["status"] == "ok" and rows["000000000"]["sample_id"] == 10
    assert rows["000000000"]["width"] == 100 and rows["000000000"]["nsfw"] == "UNLIKELY"
    assert rows["000000001"]["error_kind"] == "missing_caption"
    assert rows["000000002"]["error_kind"] == "missing_url"
    assert all(not r["has_image"] and r["source_format"] == "metadata_parquet" for r in rows.values())


def test_metadata_parquet_with_url_and_text_only(tmp_path):
    path = _metadata(tmp_path, {"url": ["http://a/1.jpg"], "text": ["hello"]})
    rows, _ = _read(path, fmt="metadata_parquet", key="00004")
    row = rows["000000000"]
    assert row["caption"] == "hello" and row["sample_id"] is None and row["status"] == "ok"


def test_parquet_without_text_is_refused(tmp_path):
    path = _metadata(tmp_path, {"url": ["http://a/1.jpg"]})
    with pytest.raises(ShardReadError, match="URL and TEXT"):
        _read(path, fmt="metadata_parquet", key="00004")


def test_corrupt_parquet_raises_naming_the_file(tmp_path):
    path = tmp_path / "part-00004-x.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(ShardReadError, match="part-00004-x.parquet"):
        _read(path, fmt="metadata_parquet", key="00004")


def test_real_laion_metadata_sample(shared_data):
    path = shared_data / "laion_metadata_sample" / "laion400m_text_sample_1000.parquet"
    rows, _ = _read(path, fmt="metadata_parquet", key="01000")
    assert len(rows) == pq.read_metadata(path).num_rows
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert len(ok) > 0.9 * len(rows)
    assert all(isinstance(r["caption"], str) for r in ok)


def test_rows_match_the_published_schema(tmp_path):
    path = write_tar(tmp_path / "00000.tar", [good_sample("000000000")])
    tables = list(read_samples(ShardSource("00000", "webdataset", str(path))))
    assert tables[0].schema.equals(SAMPLES_SCHEMA)


def test_bad_shard_of_the_generator(sample_shards):
    manifest = json.loads((sample_shards / "manifest.json").read_text())
    bad = manifest["bad_samples"]
    bad_shard = {key[:5] for key in bad.values()}
    assert len(bad_shard) == 1
    shard = bad_shard.pop()
    rows, report = _read(sample_shards / f"{shard}.tar", key=shard)
    assert report.truncated
    reader_kind = {"corrupt_jpeg": "corrupt_image", "truncated_jpeg": "truncated_image"}
    for kind, key in bad.items():
        assert reader_kind.get(kind, kind) in (rows[key]["error_kind"] or ""), (kind, rows[key])
    good = [r for k, r in rows.items() if k not in bad.values()]
    assert good and all(r["status"] == "ok" for r in good)
