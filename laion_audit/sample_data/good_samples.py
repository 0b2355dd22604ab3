"""One well-formed sample: its image, alt-text, img2dataset json, LAION columns and ground-truth row.

Images and texts draw from separate random streams, so changing a caption template does not move any
pasted person (and the other way round).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from laion_audit.sample_data.caption_counts import caption_hits
from laion_audit.sample_data.captions import PlantedCaption, make_caption
from laion_audit.sample_data.images import PastedPerson, compose
from laion_audit.sample_data.webdataset_writer import encode_record, sample_record

PERSON_RATE = 0.6
TWO_PEOPLE_RATE = 0.2
JPEG_QUALITY = 90
CC_BY = "https://creativecommons.org/licenses/by/4.0/"
LICENSE_RATE_CC = 0.15
# LAION's CLIP-estimated NSFW flag, drawn more often towards NSFW when a keyword is present, as in the data.
NSFW_FLAG_PROBABILITIES = {
    "keyword": {"UNLIKELY": 0.45, "UNSURE": 0.35, "NSFW": 0.2},
    "no_keyword": {"UNLIKELY": 0.85, "UNSURE": 0.12, "NSFW": 0.03},
}
# Columns of ground_truth.parquet, in order (json-encoded lists are strings).
TRUTH_COLUMNS = (
    "shard", "key", "format", "has_person", "n_people", "boxes", "caption", "url", "nsfw_flag",
    "planted_crime", "planted_sentiment", "planted_identity_groups", "identity_groups", "crime_terms",
    "nsfw_text_hits", "nsfw_url_hits", "nsfw_text_word_hits", "nsfw_url_word_hits", "search_hits",
    "search_word_hits", "bad_kind",
)


@dataclass
class Sample:
    key: str
    members: dict[str, bytes]  # extension -> bytes, in img2dataset's order: jpg, txt, json
    record: dict[str, Any]
    truth: dict[str, Any]


def sample_key(shard_id: int, index: int) -> str:
    return f"{shard_id:05d}{index:04d}"


def shard_streams(seed: int, shard_id: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(image stream, text stream) of one shard: a function of (seed, shard id) only, no global state."""
    return np.random.default_rng([seed, shard_id, 0]), np.random.default_rng([seed, shard_id, 1])


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def draw_nsfw_flag(rng: np.random.Generator, has_keyword: bool) -> str:
    table = NSFW_FLAG_PROBABILITIES["keyword" if has_keyword else "no_keyword"]
    flags = list(table)
    return flags[int(rng.choice(len(flags), p=list(table.values())))]


def truth_row(
    *,
    shard: str,
    key: str,
    source_format: str,
    caption: str | None,
    url: str | None,
    planted: PlantedCaption | None,
    nsfw_flag: str,
    people: list[PastedPerson] | None,
    bad_kind: str | None = None,
) -> dict[str, Any]:
    """A ground-truth row. ``people`` None means unknown (no image, or an image that cannot be decoded);
    ``planted`` None means nothing readable was planted (the caption is missing or undecodable)."""
    hits = caption_hits(caption, url)
    row = {
        "shard": shard,
        "key": key,
        "format": source_format,
        "has_person": None if people is None else bool(people),
        "n_people": None if people is None else len(people),
        "boxes": json.dumps([p.as_dict() for p in people or []]),
        "caption": caption,
        "url": url,
        "nsfw_flag": nsfw_flag,
        "planted_crime": bool(planted and planted.planted_crime),
        "planted_sentiment": planted.sentiment if planted else "neutral",
        "planted_identity_groups": json.dumps(list(planted.identity_groups) if planted else []),
        "identity_groups": json.dumps(hits["identity_groups"]),
        "crime_terms": json.dumps(hits["crime_terms"]),
        "bad_kind": bad_kind,
    }
    for column in ("nsfw_text_hits", "nsfw_url_hits", "nsfw_text_word_hits", "nsfw_url_word_hits",
                   "search_hits", "search_word_hits"):
        row[column] = json.dumps(hits[column])
    return {column: row[column] for column in TRUTH_COLUMNS}


def make_good_sample(
    image_rng: np.random.Generator,
    text_rng: np.random.Generator,
    shard_id: int,
    index: int,
    image_size: tuple[int, int],
) -> Sample:
    key = sample_key(shard_id, index)
    n_people = 0
    if image_rng.random() < PERSON_RATE:
        n_people = 2 if image_rng.random() < TWO_PEOPLE_RATE else 1
    image, people = compose(image_rng, n_people, image_size)
    data = jpeg_bytes(image)
    planted = make_caption(text_rng, key, mentions_person=bool(people))
    hits = caption_hits(planted.text, planted.url)
    laion = {
        "NSFW": draw_nsfw_flag(text_rng, bool(hits["nsfw_text_hits"] or hits["nsfw_url_hits"])),
        "similarity": round(float(text_rng.uniform(0.28, 0.4)), 4),
        "LICENSE": CC_BY if text_rng.random() < LICENSE_RATE_CC else "?",
        "SAMPLE_ID": shard_id * 100_000 + index,
    }
    record = sample_record(key=key, url=planted.url, caption=planted.text, width=image.width,
                           height=image.height, sha256=hashlib.sha256(data).hexdigest(), laion=laion)
    truth = truth_row(shard=f"{shard_id:05d}", key=key, source_format="webdataset", caption=planted.text,
                      url=planted.url, planted=planted, nsfw_flag=laion["NSFW"], people=people)
    members = {"jpg": data, "txt": planted.text.encode("utf-8"), "json": encode_record(record)}
    return Sample(key, members, record, truth)
