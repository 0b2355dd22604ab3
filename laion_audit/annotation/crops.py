"""Person crops cut on the fly from the shard's images, following the `person_boxes` table.

The paper crops ``image.crop((x1, y1, x2, y2))`` on the full-resolution RGB image with no margin; so do we.
Nothing is written to disk: a shard of 10k images would otherwise become ~7k crop files, 41k shards ~280M.

Images come from `decode_image`, i.e. `decode_for_models`: the same upright (EXIF orientation applied),
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

from laion_audit.annotation.throughput import LoaderStats
from laion_audit.shards.images import ORIENTATION_INFO, decode_image
from laion_audit.shards.reader import ShardReadError
from laion_audit.shards.sources import ShardSource


@dataclass(frozen=True)
class PersonBox:
    key: str
    box_id: int
    xyxy: tuple[float, float, float, float]


def valid_boxes(boxes: pa.Table) -> list[PersonBox]:
    rows = boxes.filter(pc.fill_null(boxes["valid"], False)).select(["key", "box_id", "x1", "y1", "x2", "y2"])
    return [PersonBox(r["key"], r["box_id"], (r["x1"], r["y1"], r["x2"], r["y2"])) for r in rows.to_pylist()]


class ImageDecodeError(ShardReadError):
    """An image the `samples` table accepted no longer decodes (the shard file changed since ingest): the shard
    fails, named, without retries, since a retry reads the same bytes."""


def iter_person_images(
    source: ShardSource, boxes: list[PersonBox], *, workers: int = 0, batch_size: int = 32,
    stats: LoaderStats | None = None,
) -> Iterator[tuple[PersonBox, Image.Image]]:
    """Yield (box, full RGB image) for each box, in tar order; the caller crops or highlights.

    Images are decoded in ``workers`` DataLoader processes (0: in this process), ``batch_size`` at a time, a
    few batches ahead of the caller's model; ``stats`` gets the images, batches and time spent waiting.
    """
    from laion_audit.annotation.image_loader import load_batches

    by_key: dict[str, list[PersonBox]] = defaultdict(list)
    for box in boxes:
        by_key[box.key].append(box)
    for batch in load_batches(source, by_key, upright_pixels, batch_size=batch_size, workers=workers,
                              stats=stats):
        if batch.failed:
            key, error = next(iter(batch.failed.items()))
            raise ImageDecodeError(f"shard {source.key}, sample {key}: {error}")
        for key, (pixels, orientation) in zip(batch.ready, batch.values, strict=True):
            image = Image.fromarray(pixels.numpy(), "RGB")
            image.info[ORIENTATION_INFO] = orientation
            for box in by_key[key]:
                yield box, image


def upright_pixels(data: bytes):
    """Worker side: the upright RGB pixels as a tensor (shared memory between processes, not a pickled image)."""
    import numpy as np
    import torch

    image = decode_image(data)
    return (torch.from_numpy(np.array(image)), image.info[ORIENTATION_INFO]), image.size


def crop(image: Image.Image, box: PersonBox) -> Image.Image:
    """The box's pixels; ``image`` must be the `iter_person_images` image (the detector's coordinates)."""
    return image.crop(tuple(round(v) for v in box.xyxy))
