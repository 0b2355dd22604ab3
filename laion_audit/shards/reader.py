"""Reading one shard into `samples` rows: webdataset tars and LAION metadata parquet.

The reader never drops a sample: every key it sees becomes exactly one row, with ``status``/``error_kind``/
``error`` saying what was wrong. Only a file that cannot be opened at all raises (``ShardReadError``, naming
the file), because then there are no keys to account for and the partition must fail loudly.

Tar iteration goes through webdataset's own ``tar_file_iterator`` so member naming, metadata skipping and
streaming behave exactly as in the training loaders that consume these shards; grouping is done here so that a
truncation can be pinned on the sample it cut.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from webdataset.tariterators import base_plus_ext, tar_file_iterator

from laion_audit.shards.chunking import chunked
from laion_audit.shards.image_check import DEFAULT_MAX_IMAGE_PIXELS, VerifyMode, check_image
from laion_audit.shards.samples_schema import ERROR_KINDS, SAMPLES_SCHEMA, STATUS_ERROR, STATUS_OK
from laion_audit.shards.sources import ShardSource

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
DEFAULT_BATCH_ROWS = 2048


class ShardReadError(RuntimeError):
    """The shard file cannot be opened at all; the message names the file."""


@dataclass
class ReaderOptions:
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    verify_images: VerifyMode = "decode"
    batch_rows: int = DEFAULT_BATCH_ROWS
    workers: int = field(default_factory=lambda: min(8, os.cpu_count() or 1))


@dataclass
class ShardReadReport:
    """What happened to the shard as a whole (per-sample problems live in the rows)."""

    truncated: str | None = None
    members_read: int = 0


def read_samples(
    source: ShardSource, options: ReaderOptions | None = None, report: ShardReadReport | None = None
) -> Iterator[pa.Table]:
    """Yield the shard's `samples` rows as arrow tables of at most ``options.batch_rows`` rows."""
    options = options or ReaderOptions()
    report = report if report is not None else ShardReadReport()
    if source.format == "webdataset":
        yield from _batched(_tar_rows(source, options, report), options.batch_rows)
    elif source.format == "metadata_parquet":
        yield from _metadata_parquet_tables(source, options)
    else:
        raise ValueError(f"unknown shard format {source.format!r}")


def _batched(rows: Iterator[dict[str, Any]], size: int) -> Iterator[pa.Table]:
    for chunk in chunked(rows, size):
        yield pa.Table.from_pylist(chunk, schema=SAMPLES_SCHEMA)


# ----------------------------------------------------------------------------------------------- webdataset


def _tar_members(source: ShardSource, report: ShardReadReport) -> Iterator[tuple[str, str, bytes]]:
    """Yield (key, extension, bytes) per tar member; record a truncation instead of raising after the start."""
    reading: list[str] = []

    def remember(name: str) -> bool:
        reading[:] = [name]
        return True

    def stop_on_error(exc: Exception) -> bool:
        report.truncated = f"tar ends inside member {reading[0] if reading else '?'}: {_cause(exc)}"
        return False

    try:
        fileobj = fsspec.open(source.url, "rb").open()
    except (OSError, ValueError) as exc:
        raise ShardReadError(f"cannot open shard file {source.url}: {exc}") from exc
    with fileobj:
        members = tar_file_iterator(fileobj, handler=stop_on_error, select_files=remember)
        while True:
            try:
                member = next(members)
            except StopIteration:
                return
            except Exception as exc:
                if report.members_read == 0:
                    raise ShardReadError(
                        f"cannot open shard file {source.url} as a tar archive: {type(exc).__name__}: {exc}"
                    ) from exc
                report.truncated = f"tar ends after member {reading[0] if reading else '?'}: {_cause(exc)}"
                return
            report.members_read += 1
            prefix, suffix = base_plus_ext(member["fname"])
            if prefix is None:
                continue
            yield prefix, suffix.lower(), member["data"]


def _cause(exc: Exception) -> str:
    """The exception text without the ' @ <file object repr>' that webdataset appends."""
    return str(exc).split(" @ ", 1)[0]


def iter_tar_samples(source: ShardSource, report: ShardReadReport) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield (row key, {extension: bytes}) per sample, in tar order, keys exactly as in the `samples` table.

    Used by the `samples` reader and by every asset that needs the pixels again (detection, crops), so all of
    them agree on what a key is, duplicates included.
    """
    closed_keys: set[str] = set()
    raw_key: str | None = None  # the key as written in the tar
    row_key = ""  # raw_key, or raw_key~dupN when the key came back after its sample was closed
    current: dict[str, bytes] = {}
    duplicates = 0
    for key, ext, data in _tar_members(source, report):
        if key != raw_key:
            if raw_key is not None:
                closed_keys.add(raw_key)
                yield row_key, current
            raw_key, row_key, current = key, key, {}
            if key in closed_keys:
                duplicates += 1
                row_key = f"{key}~dup{duplicates}"
        current[ext] = data
    if raw_key is not None:
        yield row_key, current


def _tar_rows(source: ShardSource, options: ReaderOptions, report: ShardReadReport) -> Iterator[dict[str, Any]]:
    """Rows in tar order. Image checks run on a thread pool: PIL and hashlib release the GIL while they work."""
    pending: dict[str, Any] | None = None
    with ThreadPoolExecutor(max_workers=options.workers) as pool:
        for chunk in chunked(iter_tar_samples(source, report), 16 * options.workers):
            rows = list(pool.map(lambda item: _tar_row(source, item[0], item[1], options), chunk))
            if pending is not None:
                yield pending
            yield from rows[:-1]
            pending = rows[-1]
    if pending is None:
        return
    # A truncation is known only once iteration has ended; it belongs to the sample being read at the time.
    if report.truncated:
        _add_error(pending, "truncated_tar", report.truncated)
    yield pending


def image_member(members: dict[str, bytes]) -> bytes | None:
    ext = next((ext for ext in IMAGE_EXTENSIONS if ext in members), None)
    return members[ext] if ext else None


def _add_error(row: dict[str, Any], kind: str, message: str) -> None:
    kinds = [k for k in (row["error_kind"] or "").split(",") if k] + [kind]
    kinds.sort(key=ERROR_KINDS.index)
    row["error_kind"] = ",".join(kinds)
    row["error"] = "; ".join(m for m in (row["error"], message) if m)
    row["status"] = STATUS_ERROR


def _lookup(meta: dict[str, Any], *names: str) -> Any:
    lowered = {k.lower(): v for k, v in meta.items()}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _as_float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _tar_row(source: ShardSource, key: str, members: dict[str, bytes], options: ReaderOptions) -> dict[str, Any]:
    row: dict[str, Any] = {
        "shard": source.key,
        "key": key,
        "source_format": "webdataset",
        "has_image": False,
        "status": STATUS_OK,
        "error_kind": None,
        "error": None,
    }
    if key.split("~dup")[0] != key:
        _add_error(row, "duplicate_key", f"key {key.split('~dup')[0]} appears again after its sample was closed")

    meta: dict[str, Any] = {}
    if "json" not in members:
        _add_error(row, "missing_json", "no .json member")
    else:
        try:
            parsed = json.loads(members["json"].decode("utf-8"))
            if not isinstance(parsed, dict):
                raise ValueError(f"expected a JSON object, got {type(parsed).__name__}")
            meta = parsed
        except (UnicodeDecodeError, ValueError) as exc:
            _add_error(row, "malformed_json", f"malformed .json: {exc}")

    row["url"] = _lookup(meta, "url")
    row["sample_id"] = _as_int(_lookup(meta, "SAMPLE_ID", "sample-id"))
    row["nsfw"] = _lookup(meta, "NSFW")
    row["similarity"] = _as_float(_lookup(meta, "similarity"))
    row["license"] = _lookup(meta, "LICENSE")
    row["width"] = _as_int(_lookup(meta, "original_width", "width"))
    row["height"] = _as_int(_lookup(meta, "original_height", "height"))

    if "txt" not in members:
        _add_error(row, "missing_caption", "no .txt member")
        row["caption"] = None
    else:
        try:
            row["caption"] = members["txt"].decode("utf-8")
        except UnicodeDecodeError as exc:
            row["caption"] = None
            _add_error(row, "non_utf8_caption", f"caption is not valid UTF-8: {exc}")

    image_ext = next((ext for ext in IMAGE_EXTENSIONS if ext in members), None)
    if image_ext is None:
        _add_error(row, "missing_image", "no image member (.jpg/.jpeg/.png/.webp)")
        return row
    data = members[image_ext]
    digest = hashlib.sha256(data).hexdigest()
    row.update(image_member=f"{key}.{image_ext}", image_bytes=len(data), sha256=digest)
    declared = _lookup(meta, "sha256")
    if isinstance(declared, str) and declared and declared.lower() != digest:
        _add_error(row, "sha256_mismatch", f"image sha256 {digest[:12]}… differs from the json's {declared[:12]}…")
    check = check_image(data, max_pixels=options.max_image_pixels, verify=options.verify_images)
    row["image_format"] = check.format
    if check.width is not None:
        row["width"], row["height"] = check.width, check.height
    if check.ok:
        row["has_image"] = True
    else:
        _add_error(row, check.error_kind or "corrupt_image", check.error or "unreadable image")
    return row


# ------------------------------------------------------------------------------------------ metadata parquet

# LAION-400M metadata column -> samples column; matched case-insensitively ("SAMPLE-ID" in the paper's text).
_METADATA_COLUMNS = {
    "sample_id": ("sample_id", "sample-id"),
    "url": ("url",),
    "caption": ("text", "caption"),
    "license": ("license",),
    "nsfw": ("nsfw",),
    "similarity": ("similarity",),
    "width": ("width",),
    "height": ("height",),
}


def _metadata_parquet_tables(source: ShardSource, options: ReaderOptions) -> Iterator[pa.Table]:
    try:
        parquet = pq.ParquetFile(fsspec.open(source.url, "rb").open())
    except Exception as exc:
        raise ShardReadError(f"cannot open shard file {source.url} as parquet: {type(exc).__name__}: {exc}") from exc

    by_lower = {name.lower(): name for name in parquet.schema_arrow.names}
    chosen = {
        target: next((by_lower[c] for c in candidates if c in by_lower), None)
        for target, candidates in _METADATA_COLUMNS.items()
    }
    if chosen["url"] is None or chosen["caption"] is None:
        raise ShardReadError(
            f"{source.url} is not LAION metadata: it needs URL and TEXT columns, found {parquet.schema_arrow.names}"
        )

    offset = 0
    columns = sorted({c for c in chosen.values() if c})
    for batch in parquet.iter_batches(batch_size=options.batch_rows, columns=columns):
        n = batch.num_rows
        arrays: dict[str, pa.Array] = {}
        for target, column in chosen.items():
            field_type = SAMPLES_SCHEMA.field(target).type
            if column is None:
                arrays[target] = pa.nulls(n, field_type)
            else:
                arrays[target] = pc.cast(batch.column(column), field_type, safe=False)
        caption_missing = pc.is_null(arrays["caption"])
        url_missing = pc.is_null(arrays["url"])
        keys = pa.array([f"{i:09d}" for i in range(offset, offset + n)], pa.string())
        offset += n
        error_kind = pc.if_else(
            caption_missing, pa.scalar("missing_caption"), pc.if_else(url_missing, pa.scalar("missing_url"), None)
        )
        error = pc.if_else(
            caption_missing,
            pa.scalar("TEXT is null"),
            pc.if_else(url_missing, pa.scalar("URL is null"), pa.scalar(None, pa.string())),
        )
        table = pa.table(
            {
                "shard": pa.array([source.key] * n, pa.string()),
                "key": keys,
                "source_format": pa.array(["metadata_parquet"] * n, pa.string()),
                **{name: arrays[name] for name in ("sample_id", "url", "caption")},
                "width": arrays["width"],
                "height": arrays["height"],
                "nsfw": arrays["nsfw"],
                "similarity": arrays["similarity"],
                "license": arrays["license"],
                "image_member": pa.nulls(n, pa.string()),
                "image_format": pa.nulls(n, pa.string()),
                "image_bytes": pa.nulls(n, pa.int64()),
                "sha256": pa.nulls(n, pa.string()),
                "has_image": pa.array([False] * n, pa.bool_()),
                "status": pc.if_else(pc.is_null(error_kind), pa.scalar(STATUS_OK), pa.scalar(STATUS_ERROR)),
                "error_kind": error_kind,
                "error": error,
            }
        )
        yield table.cast(SAMPLES_SCHEMA)
