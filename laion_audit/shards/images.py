"""Decoded images streamed from a shard, for the GPU steps.

Pixels are read from the tar again rather than stored: crops are cut on the fly, never written out as
millions of files. Only samples the `samples` table marked as having a usable image are decoded; the others
are already accounted for there.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

from PIL import Image

from laion_audit.shards.reader import ShardReadReport, image_member, iter_tar_samples
from laion_audit.shards.sources import ShardSource


def iter_images(source: ShardSource, keys: Iterable[str]) -> Iterator[tuple[str, Image.Image]]:
    """Yield (key, RGB image) for each wanted key, in tar order."""
    wanted = set(keys)
    if source.format != "webdataset" or not wanted:
        return
    for key, members in iter_tar_samples(source, ShardReadReport()):
        if key not in wanted:
            continue
        data = image_member(members)
        if data is None:
            continue
        with Image.open(io.BytesIO(data)) as image:
            yield key, image.convert("RGB")
