"""Small webdataset shards written with webdataset's own TarWriter, for tests that need exact content."""

from __future__ import annotations

import io
import json
from pathlib import Path

import webdataset as wds
from PIL import Image


def jpeg_bytes(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def good_sample(key: str, caption: str = "a person on a beach", **meta) -> dict:
    image = jpeg_bytes()
    info = {"url": f"https://images.example.org/{key}.jpg", "key": key, "status": "success", "width": 64,
            "height": 48, "caption": caption, "NSFW": "UNLIKELY", "similarity": 0.31, "LICENSE": "?",
            "SAMPLE_ID": int(key), **meta}
    return {"__key__": key, "jpg": image, "txt": caption, "json": json.dumps(info).encode()}


def write_tar(path: Path, samples: list[dict]) -> Path:
    with wds.TarWriter(str(path)) as sink:
        for sample in samples:
            sink.write(sample)
    return path
