"""The sample-data generator: determinism, img2dataset layout, every bad-sample kind, the metadata shard, and
manifest counts that agree with an independent recount of the files themselves."""

from __future__ import annotations

import hashlib
import io
import json
import re
import struct
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from laion_audit.audits.word_lists import load_identity_terms, load_json_lexicon, load_word_list
from laion_audit.sample_data import BAD_KINDS, write_sample_shards, write_webdataset_shard
from laion_audit.sample_data.captions import make_caption

LAION_COLUMNS = ["SAMPLE_ID", "URL", "TEXT", "LICENSE", "NSFW", "similarity", "WIDTH", "HEIGHT"]
IMG2DATASET_FIELDS = {"url", "key", "status", "error_message", "width", "height", "original_width",
                      "original_height", "exif", "sha256", "caption", "NSFW", "similarity", "LICENSE", "SAMPLE_ID"}


def manifest_of(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def read_tar(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}


def word_regex(terms) -> re.Pattern:
    """Written independently of laion_audit.audits.word_lists.term_pattern on purpose."""
    return re.compile("|".join(rf"(?<![a-z0-9_]){re.escape(t)}(?![a-z0-9_])" for t in terms))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small_run")
    write_sample_shards(root, seed=3, n_tar_shards=1, samples_per_shard=6, metadata_rows=30)
    return root


def test_same_seed_gives_byte_identical_shards_and_another_seed_does_not(tmp_path):
    (tmp_path / "a").mkdir()
    a = write_webdataset_shard(tmp_path / "a" / "00000.tar", 0, 10)
    b = write_webdataset_shard(tmp_path / "b.tar", 0, 10)
    c = write_webdataset_shard(tmp_path / "c.tar", 0, 10, seed=1)
    assert (tmp_path / "a" / "00000.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert (tmp_path / "a" / "00000.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert (tmp_path / "b.tar").read_bytes() != (tmp_path / "c.tar").read_bytes()
    assert [row["key"] for row in a] == [row["key"] for row in b]
    assert a == b and a != c


def test_a_whole_run_is_reproducible(tmp_path, small_run):
    write_sample_shards(tmp_path, seed=3, n_tar_shards=1, samples_per_shard=6, metadata_rows=30)
    names = sorted(p.name for p in small_run.iterdir())
    assert names == sorted(p.name for p in tmp_path.iterdir())
    for name in names:
        assert (small_run / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_manifest_lists_every_file_and_format(small_run):
    manifest = manifest_of(small_run)
    assert set(manifest) >= {"seed", "parameters", "planted_rates", "matching", "files", "shards", "bad_samples",
                             "overall"}
    assert {key: info["format"] for key, info in manifest["shards"].items()} == {
        "00000": "webdataset", "00001": "webdataset", "00002": "metadata_parquet"}
    written = {p.name for p in small_run.iterdir()}
    listed = set(manifest["files"]) | {f for info in manifest["shards"].values() for f in info["files"]}
    assert listed == written
    assert not (small_run / "00002.tar").exists()


def test_img2dataset_layout_of_a_good_shard(sample_shards):
    members = read_tar(sample_shards / "00000.tar")
    names = list(members)
    assert len(names) == 3 * 48
    for i in range(48):
        key = f"00000{i:04d}"
        assert names[3 * i: 3 * i + 3] == [f"{key}.jpg", f"{key}.txt", f"{key}.json"]
        meta = json.loads(members[f"{key}.json"])
        assert set(meta) == IMG2DATASET_FIELDS
        assert meta["key"] == key and meta["status"] == "success" and meta["error_message"] is None
        assert meta["caption"] == members[f"{key}.txt"].decode("utf-8")
        assert meta["sha256"] == hashlib.sha256(members[f"{key}.jpg"]).hexdigest()
        assert meta["NSFW"] in {"UNLIKELY", "UNSURE", "NSFW"} and 0.28 <= meta["similarity"] <= 0.4
        assert meta["LICENSE"] == "?" or meta["LICENSE"].startswith("https://creativecommons.org/")
        assert re.match(r"https://[a-z]+\.example\.(com|org|net)/", meta["url"])
        image = Image.open(io.BytesIO(members[f"{key}.jpg"]))
        assert image.format == "JPEG" and image.size == (meta["width"], meta["height"])
        assert 160 <= image.width <= 512 and 160 <= image.height <= 512
    with tarfile.open(sample_shards / "00000.tar") as archive:
        for info in archive.getmembers():
            assert (info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode) == (
                1_600_000_000, 0, 0, "", "", 0o644)
    sidecar = pq.read_table(sample_shards / "00000.parquet").to_pylist()
    assert [row["key"] for row in sidecar] == [f"00000{i:04d}" for i in range(48)]
    assert sidecar[5] == json.loads(members["000000005.json"])
    stats = json.loads((sample_shards / "00000_stats.json").read_text())
    assert stats["count"] == stats["successes"] == 48 and stats["status_dict"] == {"success": 48}
    assert {"failed_to_download", "failed_to_resize", "start_time", "end_time"} <= set(stats)


def test_bad_shard_holds_each_kind_once_with_its_fault(sample_shards):
    manifest = manifest_of(sample_shards)
    bad = manifest["bad_samples"]
    assert list(bad) == list(BAD_KINDS) and len(set(bad.values())) == len(BAD_KINDS)
    shard = "00003"
    assert all(key.startswith(shard) for key in bad.values()) and manifest["shards"][shard]["bad"]
    members: dict[str, bytes] = {}
    with pytest.raises(tarfile.ReadError):
        with tarfile.open(sample_shards / f"{shard}.tar", "r|*") as archive:
            for member in archive:
                members[member.name] = archive.extractfile(member).read()
    keys = {name.split(".")[0] for name in members}
    assert len(keys - set(bad.values())) >= 5  # good samples sit beside the bad ones

    with pytest.raises(Exception):
        Image.open(io.BytesIO(members[f"{bad['corrupt_jpeg']}.jpg"])).load()
    truncated = members[f"{bad['truncated_jpeg']}.jpg"]
    assert truncated[:2] == b"\xff\xd8" and not truncated.endswith(b"\xff\xd9")
    with pytest.raises(OSError):
        Image.open(io.BytesIO(truncated)).load()

    bomb_key = bad["decompression_bomb"]
    assert f"{bomb_key}.jpg" not in members
    png = members[f"{bomb_key}.png"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert width * height > 200_000_000 and len(png) < 100_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(png))

    assert f"{bad['missing_caption']}.txt" not in members and f"{bad['missing_caption']}.jpg" in members
    with pytest.raises(UnicodeDecodeError):
        members[f"{bad['non_utf8_caption']}.txt"].decode("utf-8")
    assert f"{bad['missing_json']}.json" not in members and f"{bad['missing_json']}.txt" in members
    with pytest.raises(json.JSONDecodeError):
        json.loads(members[f"{bad['malformed_json']}.json"])
    missing_image = bad["missing_image"]
    assert {f"{missing_image}.txt", f"{missing_image}.json"} <= set(members)
    assert not any(name.startswith(missing_image) and name.endswith((".jpg", ".png")) for name in members)

    # The archive ends inside the last sample's json: its image and caption came out whole, the json did not.
    last = bad["truncated_tar"]
    assert last == max(keys)
    Image.open(io.BytesIO(members[f"{last}.jpg"])).load()
    members[f"{last}.txt"].decode("utf-8")
    assert f"{last}.json" not in members


def test_metadata_shard_has_the_laion_400m_columns(sample_shards):
    manifest = manifest_of(sample_shards)
    key, info = next((k, v) for k, v in manifest["shards"].items() if v["format"] == "metadata_parquet")
    assert key == "00004" and not (sample_shards / f"{key}.tar").exists()
    table = pq.read_table(sample_shards / info["files"][0])
    assert table.column_names == LAION_COLUMNS
    assert [str(t) for t in table.schema.types] == ["int64", "string", "string", "string", "string", "double",
                                                    "int64", "int64"]
    assert table.num_rows == manifest["parameters"]["metadata_rows"] == 400
    nulls = [f"{i:09d}" for i, text in enumerate(table.column("TEXT").to_pylist()) if text is None]
    assert nulls == info["null_text_keys"] and 0 < len(nulls) < 10
    assert set(table.column("NSFW").to_pylist()) <= {"UNLIKELY", "UNSURE", "NSFW"}


def _texts_and_urls_from_files(root: Path, shard: str, info: dict) -> tuple[list[str | None], list[str | None]]:
    if info["format"] == "metadata_parquet":
        table = pq.read_table(root / info["files"][0])
        return table.column("TEXT").to_pylist(), table.column("URL").to_pylist()
    members = read_tar(root / f"{shard}.tar")
    keys = sorted({name.split(".")[0] for name in members})
    texts = [members[f"{k}.txt"].decode("utf-8") for k in keys]
    urls = [json.loads(members[f"{k}.json"])["url"] for k in keys]
    return texts, urls


def _recount(texts: list[str | None], urls: list[str | None]) -> dict:
    texts = [(t or "").lower() for t in texts]
    urls = [(u or "").lower() for u in urls]
    sentiment = load_json_lexicon("sentiment_words")
    identity = load_identity_terms()
    nsfw, search = load_word_list("nsfw_keywords_birhane2021"), load_word_list("keyword_audit_search_strings")
    count = lambda pattern, xs: sum(1 for x in xs if pattern.search(x))  # noqa: E731
    return {
        "samples": len(texts),
        "crime_word": count(word_regex(load_word_list("crime_words")), texts),
        "positive_word": count(word_regex(sentiment["positive"]), texts),
        "negative_word": count(word_regex(sentiment["negative"]), texts),
        "identity_groups": {f"{axis}:{group}": count(word_regex(terms), texts)
                            for axis, groups in identity.items() for group, terms in groups.items()},
        "nsfw_keywords_substring": {kw: {"text": sum(kw in t for t in texts), "url": sum(kw in u for u in urls)}
                                    for kw in nsfw},
        "nsfw_keywords_word": {kw: {"text": count(word_regex([kw]), texts), "url": count(word_regex([kw]), urls)}
                               for kw in nsfw},
        "search_strings_substring": {s: sum(s in t for t in texts) for s in search},
        "search_strings_word": {s: count(word_regex([s]), texts) for s in search},
    }


def _comparable(stats: dict) -> dict:
    picked = {key: stats[key] for key in ("samples", "crime_word", "positive_word", "negative_word",
                                          "identity_groups", "search_strings_substring", "search_strings_word")}
    for mode in ("substring", "word"):
        picked[f"nsfw_keywords_{mode}"] = {kw: {"text": v["text"], "url": v["url"]}
                                           for kw, v in stats[f"nsfw_keywords_{mode}"].items()}
    return picked


def test_manifest_counts_agree_with_a_recount_of_the_shard_files(sample_shards):
    manifest = manifest_of(sample_shards)
    for shard, info in manifest["shards"].items():
        if info["bad"]:
            continue
        texts, urls = _texts_and_urls_from_files(sample_shards, shard, info)
        assert _comparable(info["statistics"]) == _recount(texts, urls), shard


def test_overall_counts_agree_with_a_recount_of_the_ground_truth(sample_shards):
    manifest = manifest_of(sample_shards)
    truth = pq.read_table(sample_shards / "ground_truth.parquet").to_pylist()
    assert len(truth) == manifest["overall"]["samples"] == sum(s["samples"] for s in manifest["shards"].values())
    assert _comparable(manifest["overall"]) == _recount([r["caption"] for r in truth], [r["url"] for r in truth])
    overall = manifest["overall"]
    # Confounders ("design", "photo", "hotel", ...) make substring matching find more than word matching.
    assert overall["search_strings_substring"]["desi"] > overall["search_strings_word"]["desi"] > 0
    assert overall["nsfw_keywords_substring"]["hot"]["text"] > overall["nsfw_keywords_word"]["hot"]["text"] > 0
    assert overall["nsfw_keywords_substring"]["hot"]["url"] > overall["nsfw_keywords_word"]["hot"]["url"]
    for term, row in overall["keyword_audit"].items():
        matched = [r for r in truth if term in (r["caption"] or "").lower()]
        assert row["n_match"] == len(matched)
        flagged = [r for r in matched if json.loads(r["nsfw_text_hits"]) or json.loads(r["nsfw_url_hits"])]
        assert row["n_nsfw"] == len(flagged)
        assert row["nsfw_flag_values"] == dict(sorted(Counter(r["nsfw_flag"] for r in matched).items()))


def test_ground_truth_rows_agree_with_what_was_planted(sample_shards):
    truth = pq.read_table(sample_shards / "ground_truth.parquet").to_pylist()
    assert {"shard", "key", "has_person", "n_people", "boxes", "caption", "url", "planted_crime",
            "planted_sentiment", "identity_groups", "nsfw_text_hits", "nsfw_url_hits", "bad_kind"} <= set(truth[0])
    sentiment = load_json_lexicon("sentiment_words")
    for row in truth:
        text = (row["caption"] or "").lower()
        if row["planted_crime"]:
            assert json.loads(row["crime_terms"]), row
        for polarity in ("positive", "negative"):
            assert bool(word_regex(sentiment[polarity]).search(text)) == (row["planted_sentiment"] == polarity)
        assert set(json.loads(row["planted_identity_groups"])) <= set(json.loads(row["identity_groups"]))
        assert json.loads(row["nsfw_text_hits"]) == [kw for kw in load_word_list("nsfw_keywords_birhane2021")
                                                     if kw in text]
    kinds = Counter(row["bad_kind"] for row in truth if row["shard"] == "00003")
    assert {kind: kinds[kind] for kind in BAD_KINDS} == {kind: 1 for kind in BAD_KINDS}


def test_vader_sign_follows_the_planted_sentiment(sample_shards):
    vader = pytest.importorskip("vaderSentiment.vaderSentiment").SentimentIntensityAnalyzer()
    truth = pq.read_table(sample_shards / "ground_truth.parquet").to_pylist()
    checked = 0
    for row in truth:
        if not row["caption"] or json.loads(row["crime_terms"]) or json.loads(row["nsfw_text_hits"]):
            continue
        compound = vader.polarity_scores(row["caption"])["compound"]
        expected = {"positive": compound >= 0.05, "negative": compound <= -0.05, "neutral": abs(compound) < 0.05}
        assert expected[row["planted_sentiment"]], (row["caption"], compound)
        checked += 1
    assert checked > 200


def test_people_boxes_lie_inside_their_images(sample_shards):
    truth = [r for r in pq.read_table(sample_shards / "ground_truth.parquet").to_pylist()
             if r["shard"] in {"00000", "00001", "00002"}]
    assert 0.4 < sum(r["has_person"] for r in truth) / len(truth) < 0.8
    assert any(r["n_people"] == 2 for r in truth) and any(r["n_people"] == 0 for r in truth)
    sizes = []
    for shard in ("00000", "00001", "00002"):
        members = read_tar(sample_shards / f"{shard}.tar")
        for row in (r for r in truth if r["shard"] == shard):
            image = Image.open(io.BytesIO(members[f"{row['key']}.jpg"]))
            boxes = json.loads(row["boxes"])
            assert len(boxes) == row["n_people"]
            for box in boxes:
                x1, y1, x2, y2 = box["xyxy"]
                px1, py1, px2, py2 = box["person_xyxy"]
                assert 0 <= x1 < x2 <= image.width and 0 <= y1 < y2 <= image.height
                assert x1 <= px1 < px2 <= x2 and y1 <= py1 < py2 <= y2
                assert box["source"] in {"astronaut", "camera", "grace_hopper"}
                sizes.append(min(x2 - x1, y2 - y1))
            if len(boxes) == 2:
                (a1, b1, a2, b2), (c1, d1, c2, d2) = boxes[0]["xyxy"], boxes[1]["xyxy"]
                assert a2 <= c1 or c2 <= a1 or b2 <= d1 or d2 <= b1  # side by side, never overlapping
    sizes = np.array(sizes)
    assert (sizes >= 40).mean() > 0.8 and (sizes < 40).any()


def test_crime_and_negative_words_are_planted_more_often_next_to_some_groups():
    rng = np.random.default_rng(0)
    captions = [make_caption(rng, f"{i:09d}", mentions_person=True) for i in range(4000)]

    def rate(selected, attribute):
        return sum(getattr(c, attribute) for c in selected) / len(selected)

    middle_eastern = [c for c in captions if "race:middle_eastern" in c.identity_groups]
    no_race = [c for c in captions if not any(g.startswith("race:") for g in c.identity_groups)]
    assert rate(middle_eastern, "planted_crime") > 2 * rate(no_race, "planted_crime")
    negative = lambda cs: sum(c.sentiment == "negative" for c in cs) / len(cs)  # noqa: E731
    assert negative(middle_eastern) > 1.5 * negative(no_race)
