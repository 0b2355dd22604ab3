import json
import re
import tarfile
import struct

import pyarrow.parquet as pq
import pytest

from laion_audit.lexical import load_word_list
from laion_audit.sample_data import write_sample_shards, write_webdataset_shard


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path):
    a = write_webdataset_shard(tmp_path / "a.tar", 0, 12, seed=1)
    b = write_webdataset_shard(tmp_path / "b.tar", 0, 12, seed=1)
    c = write_webdataset_shard(tmp_path / "c.tar", 0, 12, seed=2)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert (tmp_path / "a.tar").read_bytes() != (tmp_path / "c.tar").read_bytes()
    assert a == b and a != c


def test_img2dataset_layout(sample_shards):
    manifest = json.loads((sample_shards / "manifest.json").read_text())
    good = [k for k, v in manifest["shards"].items() if v["format"] == "webdataset" and not v.get("bad")]
    assert good == ["00000", "00001", "00002"]
    with tarfile.open(sample_shards / "00000.tar") as archive:
        names = archive.getnames()
    assert names[:3] == ["000000000.jpg", "000000000.txt", "000000000.json"]
    meta = json.loads(tarfile.open(sample_shards / "00000.tar").extractfile("000000000.json").read())
    for field in ("url", "key", "status", "width", "height", "sha256", "caption", "NSFW", "similarity",
                  "LICENSE", "SAMPLE_ID"):
        assert field in meta
    assert pq.read_table(sample_shards / "00000.parquet").num_rows == 48
    assert json.loads((sample_shards / "00000_stats.json").read_text())["successes"] == 48


def test_bad_shard_holds_every_kind(sample_shards):
    manifest = json.loads((sample_shards / "manifest.json").read_text())
    bad = manifest["bad_samples"]
    assert set(bad) == {"corrupt_jpeg", "truncated_jpeg", "decompression_bomb", "missing_caption",
                        "non_utf8_caption", "missing_json", "malformed_json", "missing_image", "truncated_tar"}
    shard = next(iter(bad.values()))[:5]
    path = sample_shards / f"{shard}.tar"
    members = {}
    with pytest.raises(tarfile.ReadError):
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                members[member.name] = archive.extractfile(member).read()
    png = members[f"{bad['decompression_bomb']}.png"]
    width, height = struct.unpack(">II", png[16:24])
    assert width * height > 200_000_000 and len(png) < 200_000
    with pytest.raises(UnicodeDecodeError):
        members[f"{bad['non_utf8_caption']}.txt"].decode("utf-8")
    assert f"{bad['missing_caption']}.txt" not in members
    assert f"{bad['missing_json']}.json" not in members
    assert f"{bad['missing_image']}.jpg" not in members
    with pytest.raises(json.JSONDecodeError):
        json.loads(members[f"{bad['malformed_json']}.json"])


def test_metadata_shard_has_laion_columns(sample_shards):
    manifest = json.loads((sample_shards / "manifest.json").read_text())
    key, info = next((k, v) for k, v in manifest["shards"].items() if v["format"] == "metadata_parquet")
    table = pq.read_table(sample_shards / info["files"][0])
    assert table.column_names == ["SAMPLE_ID", "URL", "TEXT", "LICENSE", "NSFW", "similarity", "WIDTH", "HEIGHT"]
    assert table.column("TEXT").null_count == len(info["null_text_keys"]) > 0


def test_manifest_counts_match_a_recount_of_the_captions(sample_shards):
    manifest = json.loads((sample_shards / "manifest.json").read_text())
    truth = pq.read_table(sample_shards / "ground_truth.parquet").to_pylist()
    texts = [(row["caption"] or "").lower() for row in truth]
    crime = load_word_list("crime_words")
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in crime) + r")\b")
    overall = manifest["overall"]
    assert overall["samples"] == len(truth)
    assert overall["crime_word"] == sum(1 for t in texts if pattern.search(t))
    assert overall["search_strings_substring"]["desi"] == sum("desi" in t for t in texts)
    assert overall["search_strings_word"]["desi"] == sum(bool(re.search(r"\bdesi\b", t)) for t in texts)
    # The confounders make substring matching count more than word matching.
    assert overall["search_strings_substring"]["desi"] > overall["search_strings_word"]["desi"]
    assert overall["nsfw_keywords_substring"]["hot"]["url"] > overall["nsfw_keywords_word"]["hot"]["url"]
    assert overall["planted_crime"] == sum(row["planted_crime"] for row in truth)


def test_people_boxes_lie_inside_their_images(sample_shards):
    truth = pq.read_table(sample_shards / "ground_truth.parquet").to_pylist()
    with_people = [row for row in truth if row["has_person"]]
    assert len(with_people) > 20
    from PIL import Image
    import io

    archive = tarfile.open(sample_shards / "00000.tar")
    for row in with_people:
        if row["shard"] != "00000":
            continue
        image = Image.open(io.BytesIO(archive.extractfile(f"{row['key']}.jpg").read()))
        for box in json.loads(row["boxes"]):
            x1, y1, x2, y2 = box["xyxy"]
            assert 0 <= x1 < x2 <= image.width and 0 <= y1 < y2 <= image.height
