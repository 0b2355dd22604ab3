"""One shard's `person_boxes` table from its `samples` table and a person detector.

Every sample key gets at least one row: a row per detected person (``box_id`` 0..n-1), or a single row with
``box_id`` null saying there was no person, no image (text-only shard) or an upstream error — so the table
accounts for the shard's keys exactly as `samples` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
from PIL import Image

from laion_audit.annotation.schemas import PERSON_BOXES_SCHEMA
from laion_audit.shards.chunking import chunked
from laion_audit.shards.images import iter_images
from laion_audit.shards.sources import ShardSource

DEFAULT_MIN_SIDE = 30


@dataclass(frozen=True)
class Detection:
    x1: float
    y1: float
    x2: float
    y2: float
    confidence: float


class PersonDetectorLike(Protocol):
    name: str
    fingerprint: str
    random_weights: bool

    def detect(self, images: Sequence[Image.Image]) -> list[list[Detection]]: ...


def _base_row(shard: str, key: str, detector: PersonDetectorLike) -> dict[str, Any]:
    return {
        "shard": shard,
        "key": key,
        "box_id": None,
        "n_boxes": 0,
        "status": "ok",
        "error": None,
        "model_name": detector.name,
        "model_fingerprint": detector.fingerprint,
        "random_weights": detector.random_weights,
    }


def detect_shard(
    source: ShardSource,
    samples: pa.Table,
    detector: PersonDetectorLike,
    *,
    min_side: float = DEFAULT_MIN_SIDE,
    batch_size: int = 16,
) -> pa.Table:
    rows_by_key: dict[str, list[dict[str, Any]]] = {}
    with_image: list[str] = []
    for sample in samples.select(["key", "has_image", "status", "error_kind", "source_format"]).to_pylist():
        key = sample["key"]
        if sample["has_image"]:
            with_image.append(key)
            continue
        row = _base_row(source.key, key, detector)
        if sample["source_format"] != "webdataset":
            row.update(status="no_image", error="text-only shard: no image to detect on")
        else:
            row.update(status="upstream_error", error=f"samples: {sample['error_kind'] or sample['status']}")
        rows_by_key[key] = [row]

    for batch in chunked(iter_images(source, with_image), batch_size):
        keys = [key for key, _ in batch]
        images = [image for _, image in batch]
        for key, image, detections in zip(keys, images, detector.detect(images), strict=True):
            width, height = image.size
            if not detections:
                row = _base_row(source.key, key, detector)
                row.update(image_width=width, image_height=height)
                rows_by_key[key] = [row]
                continue
            rows = []
            for box_id, d in enumerate(detections):
                row = _base_row(source.key, key, detector)
                row.update(
                    box_id=box_id,
                    n_boxes=len(detections),
                    x1=d.x1,
                    y1=d.y1,
                    x2=d.x2,
                    y2=d.y2,
                    confidence=d.confidence,
                    area_fraction=(d.x2 - d.x1) * (d.y2 - d.y1) / float(width * height),
                    valid=min(d.x2 - d.x1, d.y2 - d.y1) >= min_side,
                    image_width=width,
                    image_height=height,
                )
                rows.append(row)
            rows_by_key[key] = rows

    for key in with_image:
        if key not in rows_by_key:
            row = _base_row(source.key, key, detector)
            row.update(status="error", error="image listed in samples was not found when re-reading the shard")
            rows_by_key[key] = [row]

    ordered = [row for key in samples.column("key").to_pylist() for row in rows_by_key[key]]
    return pa.Table.from_pylist(ordered, schema=PERSON_BOXES_SCHEMA)
