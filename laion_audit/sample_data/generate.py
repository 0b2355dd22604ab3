"""Deterministic LAION-like sample shards for the demo, the tests and the benchmarks.

``write_sample_shards`` writes good webdataset shards, one bad shard holding every kind of broken sample, and
one text-only LAION-400M metadata parquet. ``manifest.json`` records the files, the bad keys, the planting
rates and the exact counts of what the alt-texts and URLs contain; ``ground_truth.parquet`` has one row per
sample. Tests can then predict the pipeline's statistics instead of trusting them.

Everything is a function of ``seed``: each shard draws from generators seeded with (seed, shard id), never
from global random state, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from laion_audit.sample_data.bad_samples import (
    BAD_KINDS,
    IMAGE_KINDS,
    MALFORMED_JSON,
    NON_UTF8_CAPTION,
    bomb_png,
    corrupt_jpeg,
    truncate_inside_last_member,
    truncated_jpeg,
)
from laion_audit.sample_data.caption_counts import MATCHING, caption_statistics
from laion_audit.sample_data.captions import GROUP_MULTIPLIERS, RATES, PlantedCaption
from laion_audit.sample_data.good_samples import (
    NSFW_FLAG_PROBABILITIES,
    PERSON_RATE,
    TWO_PEOPLE_RATE,
    Sample,
    make_good_sample,
    shard_streams,
    truth_row,
)
from laion_audit.sample_data.images import PastedPerson
from laion_audit.sample_data.metadata_shard import metadata_shard_name, write_metadata_shard
from laion_audit.sample_data.webdataset_writer import DeterministicTarWriter, encode_record, write_sidecars

DEFAULT_IMAGE_SIZE = (160, 512)
BAD_SHARD_IMAGE_SIZE = (160, 320)
BAD_SHARD_GOOD_SAMPLES = 8

TRUTH_SCHEMA = pa.schema([
    ("shard", pa.string()), ("key", pa.string()), ("format", pa.string()), ("has_person", pa.bool_()),
    ("n_people", pa.int64()), ("boxes", pa.string()), ("caption", pa.string()), ("url", pa.string()),
    ("nsfw_flag", pa.string()), ("planted_crime", pa.bool_()), ("planted_sentiment", pa.string()),
    ("planted_identity_groups", pa.string()), ("identity_groups", pa.string()), ("crime_terms", pa.string()),
    ("nsfw_text_hits", pa.string()), ("nsfw_url_hits", pa.string()), ("nsfw_text_word_hits", pa.string()),
    ("nsfw_url_word_hits", pa.string()), ("search_hits", pa.string()), ("search_word_hits", pa.string()),
    ("bad_kind", pa.string()),
])


def write_webdataset_shard(
    path: str | Path,
    shard_id: int,
    n_samples: int,
    *,
    seed: int = 0,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
) -> list[dict[str, Any]]:
    """One good img2dataset-style shard: ``path`` (the tar) plus ``NNNNN.parquet`` and ``NNNNN_stats.json``
    beside it. Members per sample are ``{key}.jpg``, ``{key}.txt``, ``{key}.json`` with key
    ``f"{shard_id:05d}{i:04d}"``; image sides lie within ``image_size`` (min, max). Returns one ground-truth
    row per sample (the columns of ground_truth.parquet)."""
    path = Path(path)
    image_rng, text_rng = shard_streams(seed, shard_id)
    records, truths = [], []
    with DeterministicTarWriter(path) as tar:
        for index in range(n_samples):
            sample = make_good_sample(image_rng, text_rng, shard_id, index, image_size)
            for ext, data in sample.members.items():
                tar.add(f"{sample.key}.{ext}", data)
            records.append(sample.record)
            truths.append(sample.truth)
    write_sidecars(path, records)
    return truths


def _break(kind: str, sample: Sample, image_rng: np.random.Generator) -> Sample:
    """Give ``sample`` the one fault ``kind`` and make its ground truth describe what a reader can see."""
    members, record, truth = dict(sample.members), dict(sample.record), dict(sample.truth)
    if kind == "corrupt_jpeg":
        members["jpg"] = corrupt_jpeg(image_rng)
    elif kind == "truncated_jpeg":
        members["jpg"] = truncated_jpeg(members["jpg"])
    elif kind == "decompression_bomb":
        members = {"png": bomb_png(), "txt": members["txt"], "json": members["json"]}
    elif kind == "missing_caption":
        del members["txt"]
    elif kind == "non_utf8_caption":
        members["txt"] = NON_UTF8_CAPTION
    elif kind == "missing_json":
        del members["json"]
    elif kind == "malformed_json":
        members["json"] = MALFORMED_JSON
    elif kind == "missing_image":
        del members["jpg"]
    elif kind != "truncated_tar":  # truncated_tar: the archive is cut inside this sample's json afterwards
        raise ValueError(f"unknown bad-sample kind {kind!r}")

    image = members.get("jpg") or members.get("png")
    if image is not None and kind in IMAGE_KINDS and "json" in members:
        # The json's checksum describes the bytes written, as img2dataset's would, so the sample shows only
        # its own fault and not also a checksum mismatch.
        record["sha256"] = hashlib.sha256(image).hexdigest()
        members["json"] = encode_record(record)
    caption_readable = kind not in ("missing_caption", "non_utf8_caption")
    json_readable = kind not in ("missing_json", "malformed_json", "truncated_tar")
    planted = None
    if caption_readable:
        planted = PlantedCaption(truth["caption"], truth["url"], tuple(json.loads(truth["planted_identity_groups"])),
                                 truth["planted_crime"], truth["planted_sentiment"])
    people = None if kind in IMAGE_KINDS else _people(truth)
    truth = truth_row(
        shard=truth["shard"], key=truth["key"], source_format="webdataset",
        caption=truth["caption"] if caption_readable else None,
        url=truth["url"] if json_readable else None,
        planted=planted, nsfw_flag=truth["nsfw_flag"], people=people, bad_kind=kind,
    )
    return Sample(sample.key, members, record, truth)


def _people(truth: dict[str, Any]) -> list[PastedPerson]:
    return [PastedPerson(b["source"], tuple(b["xyxy"]), tuple(b["person_xyxy"]), b["flipped"])
            for b in json.loads(truth["boxes"])]


def write_bad_shard(
    path: str | Path, shard_id: int, *, seed: int = 0, n_good: int = BAD_SHARD_GOOD_SAMPLES
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """``n_good`` good samples, then one sample of each kind in ``BAD_KINDS``; the archive ends inside the
    json of its last sample. Returns (ground truth rows, {kind: key})."""
    path = Path(path)
    image_rng, text_rng = shard_streams(seed, shard_id)
    truths: list[dict[str, Any]] = []
    bad_keys: dict[str, str] = {}
    with DeterministicTarWriter(path) as tar:
        for index in range(n_good + len(BAD_KINDS)):
            sample = make_good_sample(image_rng, text_rng, shard_id, index, BAD_SHARD_IMAGE_SIZE)
            if index >= n_good:
                kind = BAD_KINDS[index - n_good]
                sample = _break(kind, sample, image_rng)
                bad_keys[kind] = sample.key
            for ext, data in sample.members.items():
                tar.add(f"{sample.key}.{ext}", data)
            truths.append(sample.truth)
    truncate_inside_last_member(path)
    return truths, bad_keys


def write_sample_shards(
    out_dir: str | Path,
    *,
    seed: int = 0,
    n_tar_shards: int = 3,
    samples_per_shard: int = 48,
    metadata_rows: int = 400,
    include_bad_shard: bool = True,
) -> dict[str, Any]:
    """Write the demo's shards into ``out_dir``; return the manifest (also written to ``manifest.json``).

    Shard ids: ``00000`` .. ``n_tar_shards - 1`` good webdataset shards, then the bad shard (if included),
    then the metadata parquet (if ``metadata_rows``). ``ground_truth.parquet`` holds one row per sample.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards: dict[str, dict[str, Any]] = {}
    truths: list[dict[str, Any]] = []
    bad_keys: dict[str, str] = {}
    for shard_id in range(n_tar_shards):
        key = f"{shard_id:05d}"
        shard_truths = write_webdataset_shard(out_dir / f"{key}.tar", shard_id, samples_per_shard, seed=seed)
        truths += shard_truths
        shards[key] = {"format": "webdataset", "bad": False, "samples": len(shard_truths),
                       "files": [f"{key}.tar", f"{key}.parquet", f"{key}_stats.json"],
                       "statistics": caption_statistics(shard_truths)}
    next_id = n_tar_shards
    if include_bad_shard:
        key = f"{next_id:05d}"
        shard_truths, bad_keys = write_bad_shard(out_dir / f"{key}.tar", next_id, seed=seed)
        truths += shard_truths
        shards[key] = {"format": "webdataset", "bad": True, "samples": len(shard_truths), "files": [f"{key}.tar"],
                       "statistics": caption_statistics(shard_truths)}
        next_id += 1
    if metadata_rows:
        key, name = f"{next_id:05d}", metadata_shard_name(next_id)
        shard_truths = write_metadata_shard(out_dir / name, next_id, metadata_rows, seed=seed)
        truths += shard_truths
        shards[key] = {"format": "metadata_parquet", "bad": False, "samples": len(shard_truths), "files": [name],
                       "null_text_keys": [t["key"] for t in shard_truths if t["caption"] is None],
                       "statistics": caption_statistics(shard_truths)}
    manifest = {
        "generator": "laion_audit.sample_data",
        "seed": seed,
        "parameters": {"n_tar_shards": n_tar_shards, "samples_per_shard": samples_per_shard,
                       "metadata_rows": metadata_rows, "include_bad_shard": include_bad_shard,
                       "image_size": list(DEFAULT_IMAGE_SIZE)},
        "planted_rates": {"person": PERSON_RATE, "two_people_given_person": TWO_PEOPLE_RATE, "caption": RATES,
                          "group_multipliers": GROUP_MULTIPLIERS, "nsfw_flag": NSFW_FLAG_PROBABILITIES},
        "matching": MATCHING,
        "files": ["manifest.json", "ground_truth.parquet"],
        "shards": shards,
        "bad_samples": bad_keys,
        "overall": caption_statistics(truths),
    }
    pq.write_table(pa.Table.from_pylist(truths, schema=TRUTH_SCHEMA), out_dir / "ground_truth.parquet")
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
