"""Reading one shard into `samples` rows: webdataset tars and LAION metadata parquet.

The reader never drops a sample: every key it sees becomes exactly one row, with ``status``/``error_kind``/
``error`` saying what was wrong. Only a file that cannot be opened at all raises (``ShardReadError``, naming
the file), because then there are no keys to account for and the partition must fail loudly.

No single value fails a shard either. Metadata (a tar's ``.json``, a metadata parquet's columns) is coerced
per value: a value of the wrong type (a list where a string belongs, ``"abc"`` for SAMPLE_ID), out of range
(an integer beyond int64, ``1e400``) or not UTF-8 becomes null in its column and its row gets status "error",
``bad_metadata_value`` (``non_utf8_caption`` for the caption) and an ``error`` naming the field and the
problem. NaN is read as a missing value. Parquet columns of the expected types take a vectorized path; only a
batch with an odd column goes value by value.

Tar iteration goes through webdataset's own ``tar_file_iterator`` so member naming, metadata skipping and
streaming behave exactly as in the training loaders that consume these shards; grouping is done here so that a
truncation can be pinned on the sample it cut.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

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
        yield from _batched(source, _tar_rows(source, options, report), options.batch_rows)
    elif source.format == "metadata_parquet":
        yield from _metadata_parquet_tables(source, options)
    else:
        raise ValueError(f"unknown shard format {source.format!r}")


def _batched(source: ShardSource, rows: Iterator[dict[str, Any]], size: int) -> Iterator[pa.Table]:
    for chunk in chunked(rows, size):
        try:
            table = pa.Table.from_pylist(chunk, schema=SAMPLES_SCHEMA)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            # Every value is coerced per row, so this is a bug; still, say which file and which samples.
            raise ShardReadError(
                f"cannot build samples rows {chunk[0]['key']}..{chunk[-1]['key']} of shard file {source.url}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        yield table


# ----------------------------------------------------------------------------------------------- webdataset


def _tar_members(source: ShardSource, report: ShardReadReport) -> Iterator[tuple[str, str, bytes]]:
    """Yield (key, extension, bytes) per tar member; record a truncation instead of raising after the start."""
    reading: list[str] = []

    def remember(name: str) -> bool:
        reading[:] = [name]
        return True

    def stop_on_error(exc: Exception) -> bool:
        report.truncated = f"tar ends inside member {printable_key(reading[0]) if reading else '?'}: {_cause(exc)}"
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
                report.truncated = (
                    f"tar ends after member {printable_key(reading[0]) if reading else '?'}: {_cause(exc)}"
                )
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
    them agree on what a key is, duplicates and non-UTF-8 member names included.
    """
    for row_key, _raw_key, members in _tar_samples(source, report):
        yield row_key, members


def printable_key(raw_key: str) -> str:
    """The key as it can be stored: a member name that is not UTF-8 (tarfile hands its bytes over as lone
    surrogates) gets ``\\xNN`` escapes for those bytes, so it is still one distinct, valid string."""
    if not _SURROGATES.search(raw_key):
        return raw_key
    return _SURROGATES.sub(
        lambda m: f"\\x{ord(m[0]) - 0xDC00:02x}" if 0xDC80 <= ord(m[0]) <= 0xDCFF else f"\\u{ord(m[0]):04x}",
        raw_key,
    )


_SURROGATES = re.compile(r"[\ud800-\udfff]")


def _tar_samples(source: ShardSource, report: ShardReadReport) -> Iterator[tuple[str, str, dict[str, bytes]]]:
    """(row key, key as written in the tar, members) per sample."""
    closed_keys: set[str] = set()
    raw_key: str | None = None  # the key as written in the tar
    row_key = ""  # raw_key, or raw_key~dupN when the key came back after its sample was closed
    current: dict[str, bytes] = {}
    duplicates = 0
    for key, ext, data in _tar_members(source, report):
        if key != raw_key:
            if raw_key is not None:
                closed_keys.add(raw_key)
                yield row_key, raw_key, current
            raw_key, row_key, current = key, printable_key(key), {}
            if key in closed_keys:
                duplicates += 1
                row_key = f"{row_key}~dup{duplicates}"
        current[ext] = data
    if raw_key is not None:
        yield row_key, raw_key, current


def _tar_rows(source: ShardSource, options: ReaderOptions, report: ShardReadReport) -> Iterator[dict[str, Any]]:
    """Rows in tar order. Image checks run on a thread pool: PIL and hashlib release the GIL while they work."""
    pending: dict[str, Any] | None = None
    with ThreadPoolExecutor(max_workers=options.workers) as pool:
        for chunk in chunked(_tar_samples(source, report), 16 * options.workers):
            rows = list(pool.map(lambda item: _checked_tar_row(source, *item, options), chunk))
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


def _merge_errors(kinds: str | None, error: str | None, kind: str, message: str) -> tuple[str, str]:
    """error_kind and error with one more problem: each code once, in ERROR_KINDS order; messages in order."""
    codes = [k for k in (kinds or "").split(",") if k]
    if kind not in codes:
        codes.append(kind)
    codes.sort(key=ERROR_KINDS.index)
    return ",".join(codes), "; ".join(m for m in (error, message) if m)


def _add_error(row: dict[str, Any], kind: str, message: str) -> None:
    row["error_kind"], row["error"] = _merge_errors(row["error_kind"], row["error"], kind, message)
    row["status"] = STATUS_ERROR


def _lookup(meta: dict[str, Any], *names: str) -> tuple[str, Any]:
    """(the key as spelled in the json, its value) for the first of ``names`` present, case-insensitively."""
    lowered = {k.lower(): (k, v) for k, v in meta.items()}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return names[0], None


# ------------------------------------------------------------------------------------------ value coercion
# Each coercer returns (value for the samples column, problem or None). A problem is (error kind, text); the
# text says what is wrong with the value without repeating the field name, and never embeds a whole value.

Problem = tuple[str, str]
BAD_VALUE = "bad_metadata_value"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NUMBER = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)", re.IGNORECASE
)
_INTEGER = re.compile(r"[+-]?[0-9]+")


class _HugeNumber:
    """A JSON number too large for a float (``1e400``), kept as written so the error can quote it."""

    def __init__(self, text: str):
        self.text = text


def _json_float(text: str) -> float | _HugeNumber:
    number = float(text)
    return number if math.isfinite(number) else _HugeNumber(text)


def _short_str(text: str, limit: int = 40) -> str:
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def _short_number(number: int | float | Decimal) -> str:
    if isinstance(number, float):
        return repr(number)
    try:
        text = str(number)
    except ValueError:  # an int with more digits than Python will print
        return "a very long integer"
    return text if len(text) <= 30 else f"{text[:20]}… ({len(text.lstrip('-'))} digits)"


def describe_value(value: Any) -> str:
    """A short, deterministic description of a value's type (and of scalars, the value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float, Decimal)):
        return f"the number {_short_number(value)}"
    if isinstance(value, _HugeNumber):
        return f"the number {value.text[:30]}" + ("…" if len(value.text) > 30 else "")
    if isinstance(value, str):
        return f"the string {_short_str(value)}"
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes of binary data"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a value of type {type(value).__name__}"


def _is_nan(value: Any) -> bool:
    return isinstance(value, (float, Decimal)) and value != value


def _utf8_problem(exc: UnicodeError, kind: str) -> Problem:
    return kind, f"not valid UTF-8: {exc}"


def coerce_str(value: Any, utf8_kind: str = BAD_VALUE) -> tuple[str | None, Problem | None]:
    if value is None or _is_nan(value):
        return None, None
    if isinstance(value, str):
        try:
            value.encode("utf-8")  # a JSON string may carry a lone surrogate ("\\ud800")
        except UnicodeEncodeError as exc:
            return None, _utf8_problem(exc, utf8_kind)
        return value, None
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8"), None
        except UnicodeDecodeError as exc:
            return None, _utf8_problem(exc, utf8_kind)
    return None, (BAD_VALUE, f"expected a string, got {describe_value(value)}")


def _number_from_text(value: str | bytes, expected: str) -> tuple[int | float | None, Problem | None]:
    """A number written as text: ASCII digits, an optional fraction and exponent, inf or nan; blank is missing."""
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, _utf8_problem(exc, BAD_VALUE)
    text = value.strip()
    if not text:
        return None, None
    if _INTEGER.fullmatch(text):
        try:
            return int(text), None
        except ValueError:  # beyond Python's digit limit for int(), far beyond int64 anyway
            return None, (BAD_VALUE, f"the string {_short_str(value)} is out of the int64 range")
    if _NUMBER.fullmatch(text):
        number = float(text)
        if math.isnan(number):
            return None, None
        return (_HugeNumber(text) if math.isinf(number) and "inf" not in text.lower() else number), None
    return None, (BAD_VALUE, f"cannot read {_short_str(value)} as {expected}")


class _LazyDescription:
    """describe_value, computed only when a message needs it (most values need none)."""

    def __init__(self, value: Any):
        self.value = value

    def __str__(self) -> str:
        value = self.value
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", "replace")
        return describe_value(value)


def _finite(value: float | Decimal) -> bool:
    return value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)


def coerce_int(value: Any) -> tuple[int | None, Problem | None]:
    if value is None or _is_nan(value):
        return None, None
    original = value
    if isinstance(value, (str, bytes, bytearray)):
        value, problem = _number_from_text(value, "an integer")
        if problem or value is None:
            return None, problem
        if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
            return value, None
    shown = _LazyDescription(original)
    if isinstance(value, _HugeNumber):
        return None, (BAD_VALUE, f"{shown} is out of the int64 range")
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None, (BAD_VALUE, f"expected an integer, got {shown}")
    if isinstance(value, (float, Decimal)):
        if not _finite(value):
            return None, (BAD_VALUE, f"{shown} is not a finite number")
        if value != int(value):
            return None, (BAD_VALUE, f"{shown} is not a whole number")
        value = int(value)
    if not _INT64_MIN <= value <= _INT64_MAX:
        return None, (BAD_VALUE, f"{shown} is out of the int64 range")
    return value, None


def coerce_float(value: Any) -> tuple[float | None, Problem | None]:
    if value is None or _is_nan(value):
        return None, None
    original = value
    if isinstance(value, (str, bytes, bytearray)):
        value, problem = _number_from_text(value, "a number")
        if problem or value is None:
            return None, problem
        if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
            return float(value), None
    shown = _LazyDescription(original)
    if isinstance(value, _HugeNumber):
        return None, (BAD_VALUE, f"{shown} is out of the float64 range")
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None, (BAD_VALUE, f"expected a number, got {shown}")
    try:
        number = float(value)
    except OverflowError:
        return None, (BAD_VALUE, f"{shown} is out of the float64 range")
    if not math.isfinite(number):
        return None, (BAD_VALUE, f"{shown} is not a finite number")
    return number, None


_COERCERS: dict[pa.DataType, Callable[[Any], tuple[Any, Problem | None]]] = {
    pa.string(): coerce_str,
    pa.int64(): coerce_int,
    pa.float64(): coerce_float,
}

# samples column <- names in a tar's json (first present wins, case-insensitively)
_JSON_FIELDS = (
    ("url", ("url",)),
    ("sample_id", ("SAMPLE_ID", "sample-id")),
    ("nsfw", ("NSFW",)),
    ("similarity", ("similarity",)),
    ("license", ("LICENSE",)),
    ("width", ("original_width", "width")),
    ("height", ("original_height", "height")),
)


def _checked_tar_row(
    source: ShardSource, key: str, raw_key: str, members: dict[str, bytes], options: ReaderOptions
) -> dict[str, Any]:
    try:
        return _tar_row(source, key, members, options, non_utf8_key=printable_key(raw_key) != raw_key)
    except Exception as exc:  # a bug, not a bad sample: fail the partition, naming the file and the sample
        raise ShardReadError(
            f"cannot read sample {key} of shard file {source.url}: {type(exc).__name__}: {exc}"
        ) from exc


def _tar_row(
    source: ShardSource, key: str, members: dict[str, bytes], options: ReaderOptions, non_utf8_key: bool = False
) -> dict[str, Any]:
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
    if non_utf8_key:
        _add_error(row, "non_utf8_key", "tar member name is not valid UTF-8; the key keeps its bytes as \\x escapes")

    meta: dict[str, Any] = {}
    if "json" not in members:
        _add_error(row, "missing_json", "no .json member")
    else:
        try:
            parsed = json.loads(members["json"].decode("utf-8"), parse_float=_json_float)
            if not isinstance(parsed, dict):
                raise ValueError(f"expected a JSON object, got {type(parsed).__name__}")
            meta = parsed
        except (UnicodeDecodeError, ValueError) as exc:
            _add_error(row, "malformed_json", f"malformed .json: {exc}")
        except RecursionError:  # thousands of nested arrays/objects
            _add_error(row, "malformed_json", "malformed .json: nested too deeply to parse")

    for column, names in _JSON_FIELDS:
        name, raw = _lookup(meta, *names)
        row[column], problem = _COERCERS[SAMPLES_SCHEMA.field(column).type](raw)
        if problem:
            _add_error(row, problem[0], f".json {name}: {problem[1]}")

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
    _, declared = _lookup(meta, "sha256")
    # Only a clean string is compared (a lone surrogate could not go into the error text).
    declared = coerce_str(declared)[0] if isinstance(declared, str) else None
    if declared and declared.lower() != digest:
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
    batches = parquet.iter_batches(batch_size=options.batch_rows, columns=columns)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as exc:  # a corrupt page or an unreadable column: no keys to account for past here
            raise ShardReadError(
                f"cannot read shard file {source.url} as parquet after row {offset}: {type(exc).__name__}: {exc}"
            ) from exc
        yield _metadata_table(source, chosen, batch, offset)
        offset += batch.num_rows


def _metadata_table(source: ShardSource, chosen: dict[str, str | None], batch: pa.RecordBatch, offset: int) -> pa.Table:
    n = batch.num_rows
    arrays: dict[str, pa.Array] = {}
    bad: dict[str, dict[int, Problem]] = {}  # samples column -> row -> problem
    for target, column in chosen.items():
        field_type = SAMPLES_SCHEMA.field(target).type
        if column is None:
            arrays[target] = pa.nulls(n, field_type)
        else:
            arrays[target], bad[target] = coerce_column(
                batch.column(column), field_type, "non_utf8_caption" if target == "caption" else BAD_VALUE
            )
    # Missing means null in the file (or NaN), not nulled here because the value was bad.
    caption_missing = _null_not_bad(arrays["caption"], bad.get("caption", {}))
    url_missing = _null_not_bad(arrays["url"], bad.get("url", {}))
    keys = pa.array([f"{i:09d}" for i in range(offset, offset + n)], pa.string())
    error_kind = pc.if_else(
        caption_missing, pa.scalar("missing_caption"), pc.if_else(url_missing, pa.scalar("missing_url"), None)
    )
    error = pc.if_else(
        caption_missing,
        pa.scalar("TEXT is null"),
        pc.if_else(url_missing, pa.scalar("URL is null"), pa.scalar(None, pa.string())),
    )
    if any(bad.values()):
        kinds, errors = error_kind.to_pylist(), error.to_pylist()
        for target, column in chosen.items():  # messages in _METADATA_COLUMNS order
            for i, (kind, problem) in sorted(bad.get(target, {}).items()):
                kinds[i], errors[i] = _merge_errors(kinds[i], errors[i], kind, f"{column}: {problem}")
        error_kind, error = pa.array(kinds, pa.string()), pa.array(errors, pa.string())
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
    return table.cast(SAMPLES_SCHEMA)


def _null_not_bad(values: pa.Array, bad: dict[int, Problem]) -> pa.Array:
    missing = pc.is_null(values)
    if not bad:
        return missing
    return pc.and_(missing, pa.array([i not in bad for i in range(len(values))], pa.bool_()))


def coerce_column(
    values: pa.Array, target: pa.DataType, utf8_kind: str = BAD_VALUE
) -> tuple[pa.Array, dict[int, Problem]]:
    """One metadata column as ``target`` (string, int64 or float64), and the problem of each row it nulled.

    Columns already of a fitting type with clean values are cast in one go; numbers written as text are cast
    in one go where they are plain digits; anything else (a list or struct column, a value out of range,
    invalid UTF-8, text that is not a plain number) is coerced value by value with the rules of a tar's json.
    """
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), target), {}
    try:
        fast = _fast_cast(values, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        fast = None
    if fast is not None:
        return fast, {}
    if target != pa.string() and any(test(values.type) for test in _TEXT_TYPES):
        return _coerce_numeric_text(values, target)
    return _coerce_per_value(values, target, utf8_kind)


_TEXT_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)
# Numbers written as text that arrow parses exactly as Python does; anything else goes value by value.
_PLAIN_NUMBER = {pa.int64(): r"^-?[0-9]{1,18}$", pa.float64(): r"^-?[0-9]{1,15}(\.[0-9]{1,15})?$"}


def _as_bytes(values: pa.Array) -> pa.Array:
    """A text column as binary (a view: no copy, no UTF-8 check)."""
    if pa.types.is_string(values.type):
        return values.view(pa.binary())
    if pa.types.is_large_string(values.type):
        return values.view(pa.large_binary())
    return values


def _coerce_numeric_text(values: pa.Array, target: pa.DataType) -> tuple[pa.Array, dict[int, Problem]]:
    """Plain numbers cast in one go; only the other values (blank, exponent, garbage) one by one."""
    raw = _as_bytes(values)
    plain = pc.fill_null(pc.match_substring_regex(raw, _PLAIN_NUMBER[target]), False)
    text_type = pa.large_string() if pa.types.is_large_binary(raw.type) else pa.string()
    # The selected values are ASCII digits, so viewing them as text is safe.
    result = pc.if_else(plain, raw, pa.scalar(None, raw.type)).view(text_type).cast(target)
    others = pc.and_(pc.is_valid(raw), pc.invert(plain))
    indices = pc.indices_nonzero(others).to_pylist()
    if not indices:
        return result, {}
    coerce = _COERCERS[target]
    coerced: list[Any] = []
    problems: dict[int, Problem] = {}
    for i, value in zip(indices, raw.filter(others).to_pylist()):
        number, problem = coerce(value)
        coerced.append(number)
        if problem:
            problems[i] = problem
    return pc.replace_with_mask(result, others, pa.array(coerced, target)), problems


def _fast_cast(values: pa.Array, target: pa.DataType) -> pa.Array | None:
    """The column as ``target`` when every value converts without loss; None to go value by value."""
    kind = values.type
    if target == pa.string():
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            values.validate(full=True)  # parquet readers do not check UTF-8; this raises ArrowInvalid
            return values.cast(pa.string())
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            return values.cast(pa.string())  # a safe cast checks UTF-8
        return None
    if pa.types.is_floating(kind):
        nan = pc.is_nan(values)
        if pc.any(nan).as_py():
            values = pc.if_else(nan, pa.scalar(None, kind), values)  # NaN is pandas' missing value
        if target == pa.float64():
            cast = values.cast(pa.float64())
            return None if pc.any(pc.is_inf(cast)).as_py() else cast
        return values.cast(target)  # safe: a fraction, inf or out-of-range value raises ArrowInvalid
    if pa.types.is_integer(kind):
        return values.cast(target)  # safe: uint64 beyond int64 raises
    return None  # numbers as text: _coerce_numeric_text


_NESTED = {
    "a list": (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list, pa.types.is_list_view,
               pa.types.is_large_list_view),
    "an object": (pa.types.is_struct, pa.types.is_map),
}
_SCALAR_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary,
                 pa.types.is_fixed_size_binary, pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal,
                 pa.types.is_boolean)


def _coerce_per_value(values: pa.Array, target: pa.DataType, utf8_kind: str) -> tuple[pa.Array, dict[int, Problem]]:
    expected = {pa.string(): "a string", pa.int64(): "an integer", pa.float64(): "a number"}[target]
    kind = values.type
    if not any(test(kind) for test in _SCALAR_TYPES):
        # Nested or exotic values are never coerced; their type is enough to say what is wrong.
        shown = next((name for name, tests in _NESTED.items() if any(t(kind) for t in tests)), f"a {kind} value")
        present = pc.is_valid(values).to_pylist()
        problem = (BAD_VALUE, f"expected {expected}, got {shown}")
        return pa.nulls(len(values), target), {i: problem for i, ok in enumerate(present) if ok}
    values = _as_bytes(values)  # to_pylist would fail on invalid UTF-8
    out: list[Any] = []
    problems: dict[int, Problem] = {}
    if target == pa.string() and any(test(values.type) for test in _TEXT_TYPES):
        for i, value in enumerate(values.to_pylist()):  # bytes or None
            try:
                out.append(None if value is None else value.decode("utf-8"))
            except UnicodeDecodeError as exc:
                out.append(None)
                problems[i] = _utf8_problem(exc, utf8_kind)
        return pa.array(out, target), problems
    coerce = (lambda value: coerce_str(value, utf8_kind)) if target == pa.string() else _COERCERS[target]
    for i, value in enumerate(values.to_pylist()):
        coerced, problem = coerce(value)
        out.append(coerced)
        if problem:
            problems[i] = problem
    return pa.array(out, target), problems
