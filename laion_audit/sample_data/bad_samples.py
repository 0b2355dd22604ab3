"""One of each kind of broken sample a LAION reader meets in the wild, built on purpose.

Each builder produces exactly one fault, so a reader test can assert the reason it records per sample.
"""

from __future__ import annotations

import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np

BAD_KINDS = (
    "corrupt_jpeg",
    "truncated_jpeg",
    "decompression_bomb",
    "missing_caption",
    "non_utf8_caption",
    "missing_json",
    "malformed_json",
    "missing_image",
    "truncated_tar",  # must stay last: it breaks the archive after the last sample
)
IMAGE_KINDS = ("corrupt_jpeg", "truncated_jpeg", "decompression_bomb", "missing_image")

NON_UTF8_CAPTION = "café \xff au lait".encode("latin-1")  # 0xE9 and 0xFF are not valid UTF-8 here
MALFORMED_JSON = b'{"url": "http://x'


def bomb_png(width: int = 15000, height: int = 15000) -> bytes:
    """A valid 1-bit greyscale PNG whose header declares ``width * height`` pixels (225M by default, above
    Pillow's 179M-pixel DecompressionBombError limit) while the file stays a few tens of KB: all-zero rows
    compress ~1000:1."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    # Each scanline: filter byte 0, then ceil(width / 8) bytes of packed 1-bit pixels.
    rows = b"\x00" * (((width + 7) // 8 + 1) * height)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def corrupt_jpeg(rng: np.random.Generator, size: int = 2048) -> bytes:
    """Random bytes under a .jpg name (no JPEG marker, as a server error page saved as an image would be)."""
    data = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
    return b"\x00" + data[1:] if data[:2] == b"\xff\xd8" else data


def truncated_jpeg(valid_jpeg: bytes) -> bytes:
    """The first half of a valid JPEG: the header decodes, the scan data ends early."""
    return valid_jpeg[: len(valid_jpeg) // 2]


def truncate_inside_last_member(path: str | Path) -> int:
    """Cut a tar file in the middle of its last member's data (as an interrupted download leaves it).

    Every earlier member stays complete. Returns the new size in bytes.
    """
    path = Path(path)
    with tarfile.open(path) as archive:
        last = archive.getmembers()[-1]
    size = last.offset_data + max(1, last.size // 2)
    with open(path, "r+b") as handle:
        handle.truncate(size)
    return size
