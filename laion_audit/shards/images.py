"""Decoded images streamed from a shard, for the GPU steps.

Pixels are read from the tar again rather than stored: crops are cut on the fly, never written out as
millions of files. Only samples the `samples` table marked as having a usable image are decoded; the others
are already accounted for there.

Every image goes through `decode_for_models`: upright (EXIF orientation applied), transparency composited onto
a fixed background, 8-bit RGB. Detection, crops, labels and captions all read pixels through `iter_images`, so
person boxes and the crops cut from them are in the same (displayed) coordinates, and the image size matches
the width and height the `samples` table recorded at ingest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from PIL import Image

from laion_audit.shards.image_check import decode_for_models
from laion_audit.shards.reader import ShardReadReport, image_member, iter_tar_samples
from laion_audit.shards.sources import ShardSource

# Key under which the EXIF orientation applied (1-8) is left in each yielded image's ``info``.
ORIENTATION_INFO = "exif_orientation"


def iter_image_bytes(source: ShardSource, keys: Iterable[str]) -> Iterator[tuple[str, bytes | None]]:
    """Yield (key, image member bytes, or None when the sample has no image member) per wanted key, in tar order.

    The undecoded stream the DataLoader workers split between them (annotation/image_loader.py): reading the
    tar is cheap next to decoding, so every worker reads it and decodes only its own share.
    """
    wanted = set(keys)
    if source.format != "webdataset" or not wanted:
        return
    for key, members in iter_tar_samples(source, ShardReadReport()):
        if key in wanted:
            yield key, image_member(members)


def decode_image(data: bytes) -> Image.Image:
    """`decode_for_models`, with the EXIF orientation applied left in ``image.info[ORIENTATION_INFO]``."""
    image, orientation = decode_for_models(data)
    image.info[ORIENTATION_INFO] = orientation
    return image


def iter_images(source: ShardSource, keys: Iterable[str]) -> Iterator[tuple[str, Image.Image]]:
    """Yield (key, upright RGB image) for each wanted key, in tar order, decoding in this process.

    The orientation applied is in ``image.info[ORIENTATION_INFO]``. The pixel limit is not checked again: the
    keys come from the `samples` table, whose check used the run's configured ``max_image_pixels``.
    """
    for key, data in iter_image_bytes(source, keys):
        if data is not None:
            yield key, decode_image(data)
