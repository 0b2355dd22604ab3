"""One shard's `person_boxes` table from its `samples` table and a person detector.

Every sample key gets at least one row: a row per detected person (``box_id`` 0..n-1), or a single row with
``box_id`` null saying there was no person, no image (text-only shard), an upstream error, or an image that no
longer decodes (status ``error``) — so the table accounts for the shard's keys exactly as `samples` does.

Pixels come through the DataLoader input pipeline (image_loader.py): decoded and letterboxed in worker
processes while the model runs on the previous batch (yolo_batches.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
from PIL import Image

from laion_audit.annotation.schemas import PERSON_BOXES_SCHEMA
from laion_audit.annotation.throughput import LoaderStats
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


def _box_rows(shard: str, key: str, detector: PersonDetectorLike, detections: list[Detection], width: int,
              height: int, min_side: float) -> list[dict[str, Any]]:
    """A row per detected person, or one row (``box_id`` null) saying the image has none."""
    if not detections:
        row = _base_row(shard, key, detector)
        row.update(image_width=width, image_height=height)
        return [row]
    rows = []
    for box_id, d in enumerate(detections):
        row = _base_row(shard, key, detector)
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
    return rows


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
    workers: int = 0,
    stats: LoaderStats | None = None,
) -> pa.Table:
    """The shard's boxes; images decoded and letterboxed in ``workers`` DataLoader processes (0: in process).

    ``stats`` (optional) receives the images, batches, and the time spent waiting for input vs in the model.
    """
    from laion_audit.annotation.image_loader import load_batches
    from laion_audit.annotation.yolo_batches import YoloBatches

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

    yolo = YoloBatches(detector)
    stats = stats if stats is not None else LoaderStats()
    batches = load_batches(source, with_image, yolo.geometry, batch_size=batch_size, workers=workers, stack=True,
                           pin_memory=yolo.on_cuda, stats=stats)
    for batch in batches:
        started = time.perf_counter()
        found = yolo.detect(batch.values, batch.sizes)
        stats.model_s += time.perf_counter() - started
        for key, error in batch.failed.items():
            row = _base_row(source.key, key, detector)
            row.update(status="error", error=error)
            rows_by_key[key] = [row]
        for key, (width, height), detections in zip(batch.ready, batch.sizes, found, strict=True):
            rows_by_key[key] = _box_rows(source.key, key, detector, detections, width, height, min_side)

    for key in with_image:
        if key not in rows_by_key:
            row = _base_row(source.key, key, detector)
            row.update(status="error", error="image listed in samples was not found when re-reading the shard")
            rows_by_key[key] = [row]

    ordered = [row for key in samples.column("key").to_pylist() for row in rows_by_key[key]]
    return pa.Table.from_pylist(ordered, schema=PERSON_BOXES_SCHEMA)
