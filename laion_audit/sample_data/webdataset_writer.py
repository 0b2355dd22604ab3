"""Writing shards byte-for-byte reproducibly, in the layout img2dataset produces.

Tar members are written with fixed mtime/uid/gid/mode so the same seed gives identical files (a test checks
it); the per-sample json and the per-shard parquet and _stats.json carry img2dataset's fields plus LAION's
extra columns (NSFW, similarity, LICENSE, SAMPLE_ID).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

FIXED_MTIME = 1_600_000_000


def add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    archive.addfile(info, io.BytesIO(data))


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members:
            add_member(archive, name, data)


def sample_json(key: str, url: str, caption: str, width: int, height: int, sha256: str, extra: dict) -> bytes:
    record = {
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
        **extra,
    }
    return json.dumps(record, sort_keys=True).encode()


def write_sidecars(tar_path: Path, records: list[dict]) -> None:
    """img2dataset's NNNNN.parquet (one row per sample) and NNNNN_stats.json beside the tar."""
    stem = tar_path.with_suffix("")
    pq.write_table(pa.Table.from_pylist(records), f"{stem}.parquet")
    stats = {
        "count": len(records),
        "successes": len(records),
        "failed_to_download": 0,
        "failed_to_resize": 0,
        "start_time": FIXED_MTIME,
        "end_time": FIXED_MTIME + 60,
        "status_dict": {"success": len(records)},
    }
    Path(f"{stem}_stats.json").write_text(json.dumps(stats, indent=1, sort_keys=True))
