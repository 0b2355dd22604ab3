from pathlib import Path

import pytest

from laion_audit.shards.sources import (
    ShardDiscoveryError,
    ShardNotFoundError,
    discover_shards,
    format_shard_key,
    locate_shard,
    shard_number_from_name,
)


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("00017.tar", 17),
        ("part-00017-5b54c5d5-bbcf-484d-a2ce-0d6f73df1a36-c000.snappy.parquet", 17),
        ("laion400m_text_sample_1000.parquet", 1000),
        ("41407.tar", 41407),
        ("readme.md", None),
    ],
)
def test_shard_number_from_name(name, number):
    assert shard_number_from_name(name) == number


def test_keys_are_zero_padded_to_five_digits():
    assert format_shard_key(7) == "00007"
    assert format_shard_key(41407) == "41407"
    with pytest.raises(ValueError):
        format_shard_key(-1)


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).write_bytes(b"x")


def test_discovery_detects_format_per_shard(tmp_path):
    _touch(tmp_path, "00000.tar", "00000.parquet", "00000_stats.json", "00001.tar",
           "part-00002-abc-c000.snappy.parquet", "notes.txt", ".hidden.tar")
    sources = discover_shards(str(tmp_path))
    assert list(sources) == ["00000", "00001", "00002"]
    assert sources["00000"].format == "webdataset"
    assert sources["00000"].metadata_parquet_url.endswith("00000.parquet")
    assert sources["00000"].stats_url.endswith("00000_stats.json")
    assert sources["00001"].metadata_parquet_url is None
    assert sources["00002"].format == "metadata_parquet"
    assert sources["00002"].url.endswith("part-00002-abc-c000.snappy.parquet")


def test_two_files_claiming_one_shard_is_an_error_naming_both(tmp_path):
    _touch(tmp_path, "part-00003-a.parquet", "part-00003-b.parquet")
    with pytest.raises(ShardDiscoveryError, match="part-00003-a.parquet.*part-00003-b.parquet"):
        discover_shards(str(tmp_path))


def test_locate_prefers_img2dataset_names_and_reports_missing(tmp_path):
    _touch(tmp_path, "00005.tar", "part-00006-x.parquet")
    assert locate_shard(str(tmp_path), "00005").format == "webdataset"
    assert locate_shard(str(tmp_path), "00006").format == "metadata_parquet"
    with pytest.raises(ShardNotFoundError, match="00007"):
        locate_shard(str(tmp_path), "00007")


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover_shards(str(tmp_path / "nope"))


def test_fsspec_uri_roots_work(tmp_path):
    _touch(tmp_path, "00000.tar")
    assert list(discover_shards(f"file://{tmp_path}")) == ["00000"]


def test_scan_skips_a_duplicated_key_and_reports_what_it_ignored(tmp_path):
    from laion_audit.shards.sources import scan_shards

    _touch(tmp_path, "00001.tar", "part-00003-a.parquet", "part-00003-b.parquet", "holiday.jpg", "123456.tar")
    sources, report = scan_shards(str(tmp_path))
    assert list(sources) == ["00001"]
    assert report.duplicates == {"00003": ["part-00003-a.parquet", "part-00003-b.parquet"]}
    assert report.ignored == {"holiday.jpg": "not a .tar or .parquet",
                              "123456.tar": "with a shard number above 99999"}


@pytest.mark.parametrize("key", ["../x", "0001", "000001", "1234a", "", "00/01"])
def test_partition_keys_that_are_not_five_digits_never_reach_a_path(tmp_path, key):
    from laion_audit.shards.sources import locate_shard

    with pytest.raises(ValueError, match="shard keys are five digits"):
        locate_shard(str(tmp_path), key)
