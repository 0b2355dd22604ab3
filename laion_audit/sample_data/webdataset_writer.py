"""Writing shards byte-for-byte reproducibly, in the layout img2dataset produces.

Tar members get a fixed mtime, uid/gid 0, empty owner names and mode 0o644, so the same seed gives identical
files (a test checks it) and a shard's checksum means its content. Samples are streamed into the tar as they
are made, so a 10,000-sample benchmark shard never sits in memory whole. The per-sample json and the per-shard
parquet and ``_stats.json`` carry img2dataset's fields plus LAION's extra columns.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

FIXED_MTIME = 1_600_000_000  # 2020-09-13, any fixed value would do

# img2dataset's per-sample fields, then the LAION columns it was told to keep (save_additional_columns).
SAMPLE_SCHEMA = pa.schema([
    ("url", pa.string()),
    ("key", pa.string()),
    ("status", pa.string()),
    ("error_message", pa.string()),
    ("width", pa.int64()),
    ("height", pa.int64()),
    ("original_width", pa.int64()),
    ("original_height", pa.int64()),
    ("exif", pa.string()),
    ("sha256", pa.string()),
    ("caption", pa.string()),
    ("NSFW", pa.string()),
    ("similarity", pa.float64()),
    ("LICENSE", pa.string()),
    ("SAMPLE_ID", pa.int64()),
])


class DeterministicTarWriter:
    """A tar file whose bytes depend only on the member names and contents, in order."""

    def __init__(self, path: str | Path):
        self._archive = tarfile.open(Path(path), "w", format=tarfile.USTAR_FORMAT)

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = FIXED_MTIME
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._archive.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self._archive.close()

    def __enter__(self) -> DeterministicTarWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def sample_record(
    *, key: str, url: str, caption: str, width: int, height: int, sha256: str, laion: dict[str, Any]
) -> dict[str, Any]:
    """The per-sample json of a successful img2dataset download (``laion`` = NSFW, similarity, LICENSE,
    SAMPLE_ID)."""
    return {
        "url": url,
        "key": key,
        "status": "success",
        "error_message": None,
        "width": width,
        "height": height,
        "original_width": width,
        "original_height": height,
        "exif": None,
        "sha256": sha256,
        "caption": caption,
        **laion,
    }


def encode_record(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode("utf-8")


def write_sidecars(tar_path: str | Path, records: list[dict[str, Any]]) -> list[str]:
    """img2dataset's ``NNNNN.parquet`` (one row per sample) and ``NNNNN_stats.json`` beside the tar; returns
    their file names."""
    tar_path = Path(tar_path)
    parquet_path = tar_path.with_suffix(".parquet")
    stats_path = tar_path.with_name(f"{tar_path.stem}_stats.json")
    pq.write_table(pa.Table.from_pylist(records, schema=SAMPLE_SCHEMA), parquet_path)
    stats = {
        "count": len(records),
        "successes": len(records),
        "failed_to_download": 0,
        "failed_to_resize": 0,
        "duration": 60.0,
        "start_time": float(FIXED_MTIME),
        "end_time": float(FIXED_MTIME + 60),
        "status_dict": {"success": len(records)},
    }
    stats_path.write_text(json.dumps(stats, indent=4))
    return [parquet_path.name, stats_path.name]
