"""Person crops cut on the fly from the shard's images, following the `person_boxes` table.

The paper crops ``image.crop((x1, y1, x2, y2))`` on the full-resolution RGB image with no margin; so do we.
Nothing is written to disk: a shard of 10k images would otherwise become ~7k crop files, 41k shards ~280M.

Images come from `iter_images`, i.e. `decode_for_models`: the same upright (EXIF orientation applied),
background-composited RGB image the detector saw, so a box's coordinates select the same person here. Never
open the image bytes another way for a crop: a photo stored sideways would be cut in the wrong place.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from laion_audit.shards.images import iter_images
from laion_audit.shards.sources import ShardSource


@dataclass(frozen=True)
class PersonBox:
    key: str
    box_id: int
    xyxy: tuple[float, float, float, float]


def valid_boxes(boxes: pa.Table) -> list[PersonBox]:
    rows = boxes.filter(pc.fill_null(boxes["valid"], False)).select(["key", "box_id", "x1", "y1", "x2", "y2"])
    return [PersonBox(r["key"], r["box_id"], (r["x1"], r["y1"], r["x2"], r["y2"])) for r in rows.to_pylist()]


def iter_person_images(
    source: ShardSource, boxes: list[PersonBox]
) -> Iterator[tuple[PersonBox, Image.Image]]:
    """Yield (box, full RGB image) for each box, in tar order; the caller crops or highlights."""
    by_key: dict[str, list[PersonBox]] = defaultdict(list)
    for box in boxes:
        by_key[box.key].append(box)
    for key, image in iter_images(source, by_key):
        for box in by_key[key]:
            yield box, image


def crop(image: Image.Image, box: PersonBox) -> Image.Image:
    """The box's pixels; ``image`` must be the `iter_person_images` image (the detector's coordinates)."""
    return image.crop(tuple(round(v) for v in box.xyxy))
