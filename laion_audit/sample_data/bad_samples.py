"""One of each kind of broken sample that a LAION reader meets in the wild, built on purpose."""

from __future__ import annotations

import struct
import zlib

import numpy as np


def bomb_png(width: int = 15000, height: int = 15000) -> bytes:
    """A valid, tiny (tens of KB) 1-bit PNG whose header declares width*height pixels (225M by default)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    rows = b"\x00" * (((width + 7) // 8 + 1) * height)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def corrupt_jpeg(rng: np.random.Generator, size: int = 2048) -> bytes:
    return rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()


def truncated_jpeg(valid_jpeg: bytes) -> bytes:
    return valid_jpeg[: len(valid_jpeg) // 2]


NON_UTF8_CAPTION = "café \xff au lait".encode("latin-1")
MALFORMED_JSON = b'{"url": "http://x'

BAD_KINDS = (
    "corrupt_jpeg",
    "truncated_jpeg",
    "decompression_bomb",
    "missing_caption",
    "non_utf8_caption",
    "missing_json",
    "malformed_json",
    "missing_image",
    "truncated_tar",
)
