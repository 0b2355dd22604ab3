"""Deterministic LAION-like sample shards for the demo, the tests and the benchmarks.

`write_sample_shards` writes good webdataset shards, one bad shard with every kind of broken sample, and one
text-only LAION metadata parquet; `manifest.json` records the files, the bad keys and the realised counts of
everything planted in the alt-texts, and `ground_truth.parquet` has one row per sample, so tests can predict
the pipeline's statistics instead of trusting them.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from laion_audit.sample_data.bad_samples import (
    MALFORMED_JSON,
    NON_UTF8_CAPTION,
    bomb_png,
    corrupt_jpeg,
    truncated_jpeg,
)
from laion_audit.sample_data.captions import make_caption, vocabulary
from laion_audit.sample_data.images import compose
from laion_audit.sample_data.webdataset_writer import sample_json, write_sidecars, write_tar

PERSON_RATE = 0.65
TWO_PEOPLE_RATE = 0.2
NSFW_FLAGS = (("UNLIKELY", 0.8), ("UNSURE", 0.15), ("NSFW", 0.05))


def _rng(seed: int, shard_id: int) -> np.random.Generator:
    return np.random.default_rng([seed, shard_id])


def _jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _nsfw_flag(rng: np.random.Generator) -> str:
    roll, total = rng.random(), 0.0
    for flag, p in NSFW_FLAGS:
        total += p
        if roll < total:
            return flag
    return NSFW_FLAGS[-1][0]


def _good_sample(rng: np.random.Generator, shard_id: int, index: int, image_size: tuple[int, int]):
    key = f"{shard_id:05d}{index:04d}"
    n_people = 0
    if rng.random() < PERSON_RATE:
        n_people = 2 if rng.random() < TWO_PEOPLE_RATE else 1
    image, people = compose(rng, n_people, image_size)
    data = _jpeg(image)
    caption = make_caption(rng, key, has_person=bool(people))
    sha = hashlib.sha256(data).hexdigest()
    extra = {
        "NSFW": _nsfw_flag(rng),
        "similarity": round(float(rng.uniform(0.28, 0.4)), 4),
        "LICENSE": "?" if rng.random() < 0.8 else "https://creativecommons.org/licenses/by/4.0/",
        "SAMPLE_ID": shard_id * 100_000 + index,
    }
    meta = sample_json(key, caption.url, caption.text, image.width, image.height, sha, extra)
    members = [(f"{key}.jpg", data), (f"{key}.txt", caption.text.encode()), (f"{key}.json", meta)]
    truth = {
        "shard": f"{shard_id:05d}",
        "key": key,
        "has_person": bool(people),
        "n_people": len(people),
        "boxes": json.dumps([{"source": p.source, "xyxy": list(p.box)} for p in people]),
        "caption": caption.text,
        "url": caption.url,
        "nsfw_flag": extra["NSFW"],
        "planted_crime": caption.planted_crime,
        "planted_sentiment": caption.sentiment,
        "identity_groups": json.dumps(caption.identity_groups),
        "bad_kind": None,
    }
    return members, json.loads(meta), truth


def write_webdataset_shard(
    path: str | Path, shard_id: int, n_samples: int, *, seed: int = 0, image_size: tuple[int, int] = (160, 512)
) -> list[dict[str, Any]]:
    """One good img2dataset-style shard (tar + parquet + _stats.json); returns the per-sample ground truth."""
    path = Path(path)
    rng = _rng(seed, shard_id)
    members, records, truths = [], [], []
    for index in range(n_samples):
        sample_members, record, truth = _good_sample(rng, shard_id, index, image_size)
        members += sample_members
        records.append(record)
        truths.append(truth)
    write_tar(path, members)
    write_sidecars(path, records)
    return truths


def write_bad_shard(path: Path, shard_id: int, *, seed: int = 0, n_good: int = 8) -> tuple[list[dict], dict[str, str]]:
    """Good samples, then one sample of each broken kind; the tar itself ends inside its last member."""
    rng = _rng(seed, shard_id)
    members: list[tuple[str, bytes]] = []
    truths: list[dict] = []
    index = 0

    def next_sample():
        nonlocal index
        sample_members, _, truth = _good_sample(rng, shard_id, index, (160, 320))
        index += 1
        return dict((name.split(".", 1)[1], data) for name, data in sample_members), truth

    for _ in range(n_good):
        parts, truth = next_sample()
        members += [(f"{truth['key']}.{ext}", data) for ext, data in parts.items()]
        truths.append(truth)

    breakers = {
        "corrupt_jpeg": lambda p: p.update(jpg=corrupt_jpeg(rng)),
        "truncated_jpeg": lambda p: p.update(jpg=truncated_jpeg(p["jpg"])),
        "decompression_bomb": lambda p: p.update(png=bomb_png(), jpg=None),
        "missing_caption": lambda p: p.update(txt=None),
        "non_utf8_caption": lambda p: p.update(txt=NON_UTF8_CAPTION),
        "missing_json": lambda p: p.update(json=None),
        "malformed_json": lambda p: p.update(json=MALFORMED_JSON),
        "missing_image": lambda p: p.update(jpg=None),
        "truncated_tar": lambda p: None,
    }
    bad_keys: dict[str, str] = {}
    for kind, breaker in breakers.items():
        parts, truth = next_sample()
        breaker(parts)
        key = truth["key"]
        _rehash(parts)
        bad_keys[kind] = key
        truth["bad_kind"] = kind
        truths.append(truth)
        for ext in ("jpg", "png", "txt", "json"):
            if parts.get(ext) is not None:
                members.append((f"{key}.{ext}", parts[ext]))

    write_tar(path, members)
    # Cut the archive inside the data of its last member (the last sample's json).
    import tarfile

    with tarfile.open(path) as archive:
        last = archive.getmembers()[-1]
    data = path.read_bytes()
    path.write_bytes(data[: last.offset_data + max(1, last.size // 2)])
    return truths, bad_keys


def _rehash(parts: dict[str, bytes | None]) -> None:
    """Make the json's sha256 describe the image bytes actually written, as img2dataset's would, so each
    broken sample shows its own fault and not also a checksum mismatch."""
    image = parts.get("jpg") or parts.get("png")
    if image is None or parts.get("json") in (None, MALFORMED_JSON):
        return
    record = json.loads(parts["json"])
    record["sha256"] = hashlib.sha256(image).hexdigest()
    parts["json"] = json.dumps(record, sort_keys=True).encode()


def write_metadata_shard(path: Path, shard_id: int, rows: int, *, seed: int = 0) -> list[dict]:
    """A LAION-400M metadata parquet (no images): SAMPLE_ID, URL, TEXT, LICENSE, NSFW, similarity, WIDTH, HEIGHT."""
    rng = _rng(seed, shard_id)
    columns: dict[str, list] = {name: [] for name in
                                ("SAMPLE_ID", "URL", "TEXT", "LICENSE", "NSFW", "similarity", "WIDTH", "HEIGHT")}
    truths = []
    for index in range(rows):
        key = f"{index:09d}"
        caption = make_caption(rng, f"{shard_id:05d}{index:04d}", has_person=rng.random() < PERSON_RATE)
        text = None if index % 97 == 13 else caption.text
        columns["SAMPLE_ID"].append(shard_id * 100_000 + index)
        columns["URL"].append(caption.url)
        columns["TEXT"].append(text)
        columns["LICENSE"].append("?")
        columns["NSFW"].append(_nsfw_flag(rng))
        columns["similarity"].append(round(float(rng.uniform(0.28, 0.4)), 4))
        columns["WIDTH"].append(int(rng.integers(160, 1024)))
        columns["HEIGHT"].append(int(rng.integers(160, 1024)))
        truths.append({
            "shard": f"{shard_id:05d}", "key": key, "has_person": False, "n_people": 0, "boxes": "[]",
            "caption": text, "url": caption.url, "nsfw_flag": columns["NSFW"][-1],
            "planted_crime": caption.planted_crime if text else False,
            "planted_sentiment": caption.sentiment if text else "neutral",
            "identity_groups": json.dumps(caption.identity_groups if text else []),
            "bad_kind": None if text else "missing_caption",
        })
    schema = pa.schema([("SAMPLE_ID", pa.int64()), ("URL", pa.string()), ("TEXT", pa.string()),
                        ("LICENSE", pa.string()), ("NSFW", pa.string()), ("similarity", pa.float64()),
                        ("WIDTH", pa.int64()), ("HEIGHT", pa.int64())])
    pq.write_table(pa.table(columns, schema=schema), path)
    return truths


def _matches(term: str, text: str, mode: str) -> bool:
    if mode == "substring":
        return term in text
    return re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text) is not None


def caption_statistics(truths: list[dict]) -> dict[str, Any]:
    """Realised counts of what the captions contain, recounted from the final texts."""
    vocab = vocabulary()
    texts = [(t["caption"] or "").lower() for t in truths]
    urls = [(t["url"] or "").lower() for t in truths]
    crime_pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in vocab["crime"]) + r")(?!\w)")
    groups: Counter[str] = Counter()
    for truth in truths:
        groups.update(json.loads(truth["identity_groups"]))
    stats: dict[str, Any] = {
        "samples": len(truths),
        "with_caption": sum(1 for t in truths if t["caption"]),
        "with_person": sum(1 for t in truths if t["has_person"]),
        "crime_word": sum(1 for text in texts if crime_pattern.search(text)),
        "planted_crime": sum(1 for t in truths if t["planted_crime"]),
        "planted_positive": sum(1 for t in truths if t["planted_sentiment"] == "positive"),
        "planted_negative": sum(1 for t in truths if t["planted_sentiment"] == "negative"),
        "identity_groups": dict(sorted(groups.items())),
        "nsfw_flag": dict(sorted(Counter(t["nsfw_flag"] for t in truths).items())),
    }
    for mode in ("substring", "word"):
        stats[f"nsfw_keywords_{mode}"] = {
            kw: {"text": sum(_matches(kw, x, mode) for x in texts), "url": sum(_matches(kw, u, mode) for u in urls)}
            for kw in vocab["nsfw"]
        }
        stats[f"search_strings_{mode}"] = {s: sum(_matches(s, x, mode) for x in texts) for s in vocab["search"]}
    return stats


def write_sample_shards(
    out_dir: str | Path,
    *,
    seed: int = 0,
    n_tar_shards: int = 3,
    samples_per_shard: int = 48,
    metadata_rows: int = 400,
    include_bad_shard: bool = True,
) -> dict[str, Any]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards: dict[str, dict[str, Any]] = {}
    truths: list[dict] = []
    bad_keys: dict[str, str] = {}
    shard_id = 0
    for shard_id in range(n_tar_shards):
        key = f"{shard_id:05d}"
        shard_truths = write_webdataset_shard(out_dir / f"{key}.tar", shard_id, samples_per_shard, seed=seed)
        truths += shard_truths
        shards[key] = {"format": "webdataset", "files": [f"{key}.tar", f"{key}.parquet", f"{key}_stats.json"],
                       "statistics": caption_statistics(shard_truths)}
    next_id = n_tar_shards
    if include_bad_shard:
        key = f"{next_id:05d}"
        shard_truths, bad_keys = write_bad_shard(out_dir / f"{key}.tar", next_id, seed=seed)
        truths += shard_truths
        shards[key] = {"format": "webdataset", "files": [f"{key}.tar"], "bad": True,
                       "statistics": caption_statistics(shard_truths)}
        next_id += 1
    if metadata_rows:
        key = f"{next_id:05d}"
        name = f"part-{key}-laion-metadata.snappy.parquet"
        shard_truths = write_metadata_shard(out_dir / name, next_id, metadata_rows, seed=seed)
        truths += shard_truths
        shards[key] = {"format": "metadata_parquet", "files": [name],
                       "null_text_keys": [t["key"] for t in shard_truths if t["caption"] is None],
                       "statistics": caption_statistics(shard_truths)}
    manifest = {
        "generator": "laion_audit.sample_data",
        "seed": seed,
        "shards": shards,
        "bad_samples": bad_keys,
        "overall": caption_statistics(truths),
    }
    pq.write_table(pa.Table.from_pylist(truths), out_dir / "ground_truth.parquet")
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest
