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

Tar members are filtered and named by webdataset's rules (regular files only, its metadata names skipped,
``base_plus_ext`` keys, lower-cased extensions; copied here, since importing webdataset imports torch) so keys
are those the training loaders see; the archive is read as a stream with tarfile's rules so that how it ended is
known: a tar cut exactly at a 512-byte header boundary has no end-of-archive marker and is reported as
truncated, not read as complete. Plain regular-file headers, nearly all of a shard, are parsed here and every
other header by tarfile itself (`_ShardTar`). Members that are not ``key.ext`` are counted in the report.
Grouping is done here so that a truncation can be pinned on the sample it cut.

Throughput: the file is read in large blocks, and image checks (PIL's decoder and hashlib release the GIL) run
on a thread pool while the tar is read, a bounded number of batches ahead; rows become arrow columns, not
per-row conversions.

img2dataset's sidecars beside a tar (``NNNNN.parquet`` with every key and its status, ``NNNNN_stats.json`` with
the counts) say what the tar should hold. Every key the parquet lists as downloaded ("success") but the tar
lacks becomes a row with ``missing_from_tar``; keys it lists as failed downloads are not samples and get no row
(they are counted). The report records expected and read counts and whether the tar ended early. A sidecar
that cannot be read is recorded, never a reason to fail the shard.

Error texts are deterministic: object reprs lose their memory addresses, so the same shard gives the same rows
in every run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tarfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from laion_audit.shards.chunking import chunked
from laion_audit.shards.image_check import DEFAULT_MAX_IMAGE_PIXELS, VerifyMode, check_image
from laion_audit.shards.samples_schema import ERROR_KINDS, SAMPLES_SCHEMA, STATUS_ERROR, STATUS_OK
from laion_audit.shards.sources import ShardSource

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
DEFAULT_BATCH_ROWS = 2048
MAX_MEMBER_EXAMPLES = 10
_CHECK_BATCH = 16  # samples per task on the check pool: enough to amortise the hand-over, small for overlap


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
    read_samples: int = 0  # rows from the shard file itself (duplicate keys included, missing_from_tar not)
    # From img2dataset's sidecars (None: no usable sidecar said).
    expected_samples: int | None = None  # keys the sidecar lists as downloaded (or the stats' successes)
    missing_from_tar: int = 0  # of those, keys the tar lacks (each one a row)
    not_in_sidecar: int | None = None  # tar keys the sidecar parquet does not list as downloaded
    ended_early: bool = False
    sidecar_failed_downloads: int | None = None  # sidecar rows with another status: not samples, no row
    sidecar_error: str | None = None
    sidecars: list[str] = field(default_factory=list)  # the sidecar files that were read
    # Tar members that are not part of any sample, and members a later one with the same name replaced.
    unrecognized_members: int = 0
    unrecognized_member_examples: list[str] = field(default_factory=list)
    duplicate_members: int = 0
    duplicate_member_examples: list[str] = field(default_factory=list)
    cut_member: str | None = None  # the member the tar ended inside of, as named in the tar

    def note_unrecognized(self, name: str, why: str) -> None:
        self.unrecognized_members += 1
        if len(self.unrecognized_member_examples) < MAX_MEMBER_EXAMPLES:
            self.unrecognized_member_examples.append(f"{printable_key(name)} ({why})")

    def note_duplicate_member(self, name: str) -> None:
        self.duplicate_members += 1
        if len(self.duplicate_member_examples) < MAX_MEMBER_EXAMPLES:
            self.duplicate_member_examples.append(printable_key(name))

    def marker_fields(self) -> dict[str, Any]:
        """The shard-level facts for the `samples` marker."""
        return {
            "truncated": self.truncated,
            "ended_early": self.ended_early,
            "read_samples": self.read_samples,
            "expected_samples": self.expected_samples,
            "missing_from_tar": self.missing_from_tar,
            "not_in_sidecar": self.not_in_sidecar,
            "sidecar_failed_downloads": self.sidecar_failed_downloads,
            "sidecar_error": self.sidecar_error,
            "sidecars": list(self.sidecars),
            "unrecognized_members": self.unrecognized_members,
            "unrecognized_member_examples": list(self.unrecognized_member_examples),
            "duplicate_members": self.duplicate_members,
            "duplicate_member_examples": list(self.duplicate_member_examples),
        }


def read_samples(
    source: ShardSource, options: ReaderOptions | None = None, report: ShardReadReport | None = None
) -> Iterator[pa.Table]:
    """Yield the shard's `samples` rows as arrow tables of at most ``options.batch_rows`` rows."""
    options = options or ReaderOptions()
    report = report if report is not None else ShardReadReport()
    if source.format == "webdataset":
        sidecar = read_sidecars(source, report)
        rows = _accounted_rows(source, _tar_rows(source, options, report), sidecar, report)
        yield from _batched(source, rows, options.batch_rows)
    elif source.format == "metadata_parquet":
        for table in _metadata_parquet_tables(source, options):
            report.read_samples += table.num_rows
            yield table
    else:
        raise ValueError(f"unknown shard format {source.format!r}")


_SCHEMA_COLUMNS = [(f.name, f.type) for f in SAMPLES_SCHEMA]


def _batched(source: ShardSource, rows: Iterator[dict[str, Any]], size: int) -> Iterator[pa.Table]:
    for chunk in chunked(rows, size):
        try:
            # Column by column: several times cheaper than from_pylist's row-by-row conversion.
            table = pa.Table.from_arrays(
                [pa.array([row.get(name) for row in chunk], type) for name, type in _SCHEMA_COLUMNS],
                schema=SAMPLES_SCHEMA,
            )
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            # Every value is coerced per row, so this is a bug; still, say which file and which samples.
            raise ShardReadError(
                f"cannot build samples rows {chunk[0]['key']}..{chunk[-1]['key']} of shard file {source.url}: "
                f"{type(exc).__name__}: {stable_text(exc)}"
            ) from exc
        yield table


# ----------------------------------------------------------------------------------------------- webdataset

# webdataset's own rules (webdataset.tariterators, copied so that reading a shard does not import webdataset,
# whose package imports torch): members named ``__*__`` are its metadata, ``skip_meta`` is the default pattern
# of ``tar_file_iterator``, and ``base_plus_ext`` splits a name into key and extensions at the first dot of its
# last path component. A test compares these with webdataset's own.
WDS_META_PREFIX = WDS_META_SUFFIX = "__"
WDS_SKIP_META = r"__[^/]*__($|/)"
_SKIP_META_RE = re.compile(WDS_SKIP_META)
_BASE_PLUS_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # no flags: exactly re.match as webdataset


def base_plus_ext(path: str) -> tuple[str, str] | tuple[None, None]:
    """(key, extensions) as webdataset's ``base_plus_ext`` splits a member name; (None, None) if not key.ext."""
    match = _BASE_PLUS_EXT.match(path)
    if not match:
        return None, None
    return match.group(1), match.group(2)


def is_webdataset_meta(name: str) -> bool:
    return ("/" not in name and name.startswith(WDS_META_PREFIX) and name.endswith(WDS_META_SUFFIX)) or bool(
        _SKIP_META_RE.match(name)
    )

_INCOMPLETE_KINDS = frozenset(("missing_image", "missing_caption", "missing_json"))
_MEMBER_TYPES = {tarfile.DIRTYPE: "directory", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hard link",
                 tarfile.FIFOTYPE: "fifo", tarfile.CHRTYPE: "device", tarfile.BLKTYPE: "device"}


class _WatchedTarInfo(tarfile.TarInfo):
    """Records on the archive why its member list ended, and parses plain headers quickly.

    tarfile's stream reader ends the list without a word at a zero block (the end-of-archive marker), at the end
    of the file, inside a header and at a header it cannot parse; only the first is a complete archive.

    """

    @classmethod
    def fromtarfile(cls, archive):
        try:
            return super().fromtarfile(archive)
        except tarfile.HeaderError as exc:
            archive.laion_audit_end = exc
            raise


_OCTAL_DIGITS = b"01234567"
# The numeric fields as Python's tarfile and GNU tar write them (mode, uid, gid, size, mtime, checksum), and
# their device fields (octal or all NUL): matched in one go, anything else field by field.
_USUAL_NUMBERS = re.compile(rb"([0-7]{7})\0([0-7]{7})\0([0-7]{7})\0([0-7]{11})\0([0-7]{11})\0([0-7]{6})\0 ")
_USUAL_DEVICE = re.compile(rb"(?:[0-7]{7}\0|\0{8}){2}")
_NUMERIC_FIELDS = ((100, 108), (108, 116), (116, 124), (124, 136), (136, 148), (148, 156), (329, 337), (337, 345))


def _plain_octal(field: bytes) -> int | None:
    """A numeric header field of octal digits (space-padded, NUL-terminated) as tarfile's ``nti`` reads it; None
    for anything else (base-256, other characters), which tarfile's parser then judges."""
    digits = field.partition(b"\0")[0]
    if digits.isdigit():  # the usual zero-padded field
        return None if b"8" in digits or b"9" in digits else int(digits, 8)
    digits = digits.strip(b" ")
    if digits.translate(None, _OCTAL_DIGITS):
        return None
    return int(digits, 8) if digits else 0


def _plain_header(cls: type[tarfile.TarInfo], buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo | None:
    """The TarInfo ``TarInfo.frombuf`` would build for a plain regular-file header; None for any other block."""
    if len(buf) != tarfile.BLOCKSIZE or buf[156:157] not in (tarfile.REGTYPE, tarfile.AREGTYPE):
        return None
    if buf[0] == 0 or buf[345] != 0:  # no name (maybe a zero block), or a ustar name prefix
        return None
    usual = _USUAL_NUMBERS.match(buf, 100)
    if usual is not None and _USUAL_DEVICE.match(buf, 329):
        numbers = [int(digits, 8) for digits in usual.groups()]
        numbers += [_plain_octal(buf[start:end]) for start, end in _NUMERIC_FIELDS[6:]]
    else:
        numbers = [_plain_octal(buf[start:end]) for start, end in _NUMERIC_FIELDS]
        if None in numbers:
            return None
    mode, uid, gid, size, mtime, chksum, devmajor, devminor = numbers
    if chksum != 256 + sum(buf[:148]) + sum(buf[156:]):  # the unsigned sum; tarfile also tries the signed one
        return None
    name = buf[:100].split(b"\0", 1)[0].decode(encoding, errors)
    if name.endswith("/"):  # a directory written as an old-style regular file
        return None
    info = cls(name)
    info.mode, info.uid, info.gid, info.size, info.mtime, info.chksum = mode, uid, gid, size, mtime, chksum
    info.devmajor, info.devminor = devmajor, devminor
    info.type = buf[156:157]
    info.linkname = buf[157:257].split(b"\0", 1)[0].decode(encoding, errors)
    info.uname = buf[265:297].split(b"\0", 1)[0].decode(encoding, errors)
    info.gname = buf[297:329].split(b"\0", 1)[0].decode(encoding, errors)
    return info


# The first bytes of the compressed streams tarfile's "r|*" recognises (its _StreamProxy).
_COMPRESSED_MAGIC = (b"\x1f\x8b\x08", b"BZh", b"\x5d\x00\x00\x80", b"\xfd7zXZ")


class _ShardFile:
    """The shard file as tarfile reads a stream: forward only, with a position; its repr names the file (no
    memory address in any message).

    The file is read in large blocks and served from memory: tarfile asks for every 512-byte header and every
    member on its own, and each of those reads, if it went to the file, would give up the GIL and wait to get it
    back from the checking threads. An uncompressed tar is read from here directly (tarfile's own stream layer
    would copy every block once more); a compressed one goes through tarfile's stream mode, which only calls
    ``read``.
    """

    BLOCK = 4 << 20

    def __init__(self, fileobj: Any, url: str):
        self._fileobj, self._url = fileobj, url
        self._buf = b""
        self._at = 0  # position of the next byte in _buf
        self._pos = 0  # bytes handed out so far
        self._eof = False

    def _fill(self, size: int) -> None:
        """Make ``size`` bytes available from ``_at`` unless the file ends first."""
        parts = [self._buf[self._at:]]
        have = len(parts[0])
        while have < size and not self._eof:
            more = self._fileobj.read(max(self.BLOCK, size - have))
            if not more:  # a remote file may also return less than asked before its end
                self._eof = True
                break
            parts.append(more)
            have += len(more)
        self._buf, self._at = b"".join(parts), 0

    def peek_head(self, size: int) -> bytes:
        if len(self._buf) - self._at < size:
            self._fill(size)
        return self._buf[self._at:self._at + size]

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data = self._buf[self._at:] + self._fileobj.read()
            self._buf, self._at, self._eof = b"", 0, True
        else:
            if len(self._buf) - self._at < size:
                self._fill(size)
            data = self._buf[self._at:self._at + size]
            self._at += len(data)
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def unread(self, size: int) -> None:
        """Give back the last ``size`` bytes read (at most one read's worth, which is still in the buffer)."""
        self._at -= size
        self._pos -= size

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self._pos:
            raise tarfile.StreamError("seeking backwards is not allowed")
        while self._pos < pos:
            if not self.read(min(pos - self._pos, self.BLOCK)):
                break
        return self._pos

    def __repr__(self) -> str:
        return f"<shard file {self._url}>"

    __str__ = __repr__


class _ShardTar(tarfile.TarFile):
    """An uncompressed tar read as a stream, with plain headers read quickly.

    Almost every header of a shard is a plain regular file (ustar or GNU, no name prefix, octal numbers, a good
    checksum); `_plain_header` reads those at a fraction of the cost of tarfile's ``next``, giving the same
    TarInfo at the same offsets. Any other block (long names, pax, base-256 numbers, bad checksums, zero
    blocks, directories, links, the end of the file) is given back and read by tarfile itself, so its rules
    and its errors stay exactly as they were. Members are not kept (``members`` stays empty).
    """

    def next(self):
        shard = self.fileobj
        if self.firstmember is not None or self.pax_headers:
            return super().next()
        if self.offset != shard.tell():  # the padding after the last member's data, as tarfile skips it
            if self.offset == 0:
                return None
            shard.seek(self.offset - 1)
            if not shard.read(1):
                raise tarfile.ReadError("unexpected end of data")
        block = shard.read(tarfile.BLOCKSIZE)
        info = _plain_header(self.tarinfo, block, self.encoding, self.errors)
        if info is None:
            shard.unread(len(block))
            return super().next()
        info.offset = self.offset
        info.offset_data = self.offset + tarfile.BLOCKSIZE
        info.pax_headers = {}
        self.offset = info.offset_data + info._block(info.size)
        return info


def _open_tar(shard: _ShardFile) -> tarfile.TarFile:
    if shard.peek_head(8).startswith(_COMPRESSED_MAGIC):
        return tarfile.open(fileobj=shard, mode="r|*", tarinfo=_WatchedTarInfo)
    return _ShardTar(fileobj=shard, mode="r", tarinfo=_WatchedTarInfo)


def _member_bytes(archive: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    """The member's data, read straight from the stream (as tarfile's extractfile reads it, one copy less)."""
    if info.sparse is not None:
        return archive.extractfile(info).read()
    stream = archive.fileobj
    if stream.tell() != info.offset_data:
        stream.seek(info.offset_data)
    data = stream.read(info.size)
    if len(data) != info.size:
        raise tarfile.ReadError("unexpected end of data")
    return data


def _tar_members(source: ShardSource, report: ShardReadReport) -> Iterator[tuple[str, str, str, bytes]]:
    """Yield (member name, key, extension, bytes) per sample member, in tar order.

    Members are filtered as webdataset's ``tar_file_iterator`` does (regular files only, its metadata names
    skipped) and named with its ``base_plus_ext``, so keys are those the training loaders see; what is skipped
    is counted in ``report`` instead of vanishing. After the first header a broken or short archive ends the
    iteration with ``report.truncated`` set, never an exception.
    """
    try:
        fileobj = fsspec.open(source.url, "rb").open()
    except (OSError, ValueError) as exc:
        raise ShardReadError(f"cannot open shard file {source.url}: {stable_text(exc)}") from exc
    with fileobj:
        try:
            archive = _open_tar(_ShardFile(fileobj, source.url))
        except Exception as exc:
            raise ShardReadError(
                f"cannot open shard file {source.url} as a tar archive: {type(exc).__name__}: {stable_text(exc)}"
            ) from exc
        last: str | None = None  # the last member header read
        infos = iter(archive)
        while True:
            try:
                info = next(infos)
            except StopIteration:
                break
            except Exception as exc:  # the stream broke between members (in padding, a long-name header, gzip)
                report.truncated = f"tar ends after member {_shown(last)}: {stable_text(exc)}"
                return
            last = name = info.name
            archive.members = []  # read as a stream: keep no history
            if not info.isreg():
                report.note_unrecognized(name, _MEMBER_TYPES.get(info.type, f"tar type {info.type!r}"))
                continue
            if is_webdataset_meta(name):
                report.note_unrecognized(name, "webdataset metadata")
                continue
            key, ext = base_plus_ext(name)
            if key is None:
                report.note_unrecognized(name, "not key.ext")
                continue
            try:
                data = _member_bytes(archive, info)
            except Exception as exc:
                report.truncated = f"tar ends inside member {_shown(name)}: {stable_text(exc)}"
                report.cut_member = name
                return
            report.members_read += 1
            yield name, key, ext, data
        end = getattr(archive, "laion_audit_end", None)
        if end is None or isinstance(end, tarfile.EOFHeaderError):
            return
        if isinstance(end, tarfile.EmptyHeaderError):
            report.truncated = (
                f"tar ends at byte {archive.offset} without an end-of-archive marker, after member {_shown(last)}"
            )
        elif isinstance(end, tarfile.TruncatedHeaderError):
            report.truncated = f"tar ends inside the header at byte {archive.offset}, after member {_shown(last)}"
        else:
            report.truncated = (
                f"tar has an unreadable header at byte {archive.offset}, after member {_shown(last)} "
                f"({stable_text(end)}); nothing after it can be read"
            )


def _shown(name: str | None) -> str:
    return printable_key(name) if name is not None else "? (none read)"


_ADDRESS = re.compile(r"(<[^<>]*?) at 0x[0-9a-fA-F]+>")


def stable_text(text: Any) -> str:
    """An error text without the memory addresses of object reprs (``<_io.BytesIO object at 0x7f…>``), so
    the same input gives the same rows in every run."""
    return _ADDRESS.sub(r"\1>", str(text))


def iter_tar_samples(source: ShardSource, report: ShardReadReport) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield (row key, {extension: bytes}) per sample, in tar order, keys exactly as in the `samples` table.

    Used by the `samples` reader and by every asset that needs the pixels again (detection, crops), so all of
    them agree on what a key is, duplicates and non-UTF-8 member names included. A sample whose first member
    the tar cut off comes last, with no members.
    """
    for sample in _tar_samples(source, report):
        yield sample.row_key, sample.members


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


@dataclass
class _TarSample:
    row_key: str  # the key as stored: printable, with ~dupN when the key came back after its sample was closed
    raw_key: str  # the key as written in the tar
    members: dict[str, bytes] = field(default_factory=dict)  # lower-case extension -> bytes
    names: dict[str, str] = field(default_factory=dict)  # lower-case extension -> member name as in the tar
    cut: bool = False  # the tar ended inside this sample's first member: nothing of it was read


def _tar_samples(source: ShardSource, report: ShardReadReport) -> Iterator[_TarSample]:
    closed_keys: set[str] = set()
    duplicates = 0
    sample: _TarSample | None = None

    def start(key: str) -> _TarSample:
        nonlocal duplicates
        row_key = printable_key(key)
        if key in closed_keys:
            duplicates += 1
            row_key = f"{row_key}~dup{duplicates}"
        return _TarSample(row_key, key)

    for name, key, ext, data in _tar_members(source, report):
        if sample is None or key != sample.raw_key:
            if sample is not None:
                closed_keys.add(sample.raw_key)
                yield sample
            sample = start(key)
        ext = ext.lower()  # as webdataset's group_by_keys does
        if ext in sample.members:
            report.note_duplicate_member(name)
        sample.members[ext] = data
        sample.names[ext] = name
    if report.cut_member is not None:
        cut_key = base_plus_ext(report.cut_member)[0]
        if sample is None or cut_key != sample.raw_key:
            if sample is not None:
                closed_keys.add(sample.raw_key)
                yield sample
            sample = start(cut_key)
            sample.cut = True
    if sample is not None:
        yield sample


def _tar_rows(
    source: ShardSource, options: ReaderOptions, report: ShardReadReport
) -> Iterator[tuple[_TarSample, dict[str, Any]]]:
    """(sample, row) in tar order.

    Reading and checking overlap: batches of samples go to a thread pool as the tar is read (PIL's decoder and
    hashlib release the GIL), at most a few batches per worker in flight so memory stays bounded, and rows come
    back in tar order.
    """
    batch_size = _CHECK_BATCH
    in_flight: deque[tuple[list[_TarSample], Any]] = deque()
    limit = 2 * max(1, options.workers)

    def check(batch: list[_TarSample]) -> list[dict[str, Any]]:
        return [_checked_tar_row(source, sample, options, report) for sample in batch]

    def done() -> Iterator[tuple[_TarSample, dict[str, Any]]]:
        batch, future = in_flight.popleft()
        yield from zip(batch, future.result())

    pending: tuple[_TarSample, dict[str, Any]] | None = None
    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        try:
            for batch in chunked(_tar_samples(source, report), batch_size):
                in_flight.append((batch, pool.submit(check, batch)))
                while len(in_flight) > limit:
                    for item in done():
                        if pending is not None:
                            yield pending
                        pending = item
            while in_flight:
                for item in done():
                    if pending is not None:
                        yield pending
                    pending = item
        finally:
            for _, future in in_flight:
                future.cancel()
    if pending is None:
        return
    # A truncation is known only once iteration has ended. It belongs to the last sample when the tar was cut
    # inside one of its members, or when it lacks a member (the cut may have taken it); a sample the tar cut
    # off entirely already has its own row.
    sample, row = pending
    if report.truncated and not sample.cut:
        codes = set((row["error_kind"] or "").split(","))
        if report.cut_member is not None or codes & _INCOMPLETE_KINDS:
            _add_error(row, "truncated_tar", report.truncated)
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
    row["error_kind"], row["error"] = _merge_errors(row["error_kind"], row["error"], kind, stable_text(message))
    row["status"] = STATUS_ERROR


def _lowered(meta: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """lower-case key -> (key as spelled, value); for a repeated spelling the last one wins, as before."""
    return {k.lower(): (k, v) for k, v in meta.items()}


def _lookup_lowered(lowered: dict[str, tuple[str, Any]], *names: str) -> tuple[str, Any]:
    """(the key as spelled in the json, its value) for the first of ``names`` present, case-insensitively."""
    for name in names:
        found = lowered.get(name.lower())
        if found is not None:
            return found
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


_JSON = json.JSONDecoder(parse_float=_json_float)  # what json.loads(text, parse_float=...) builds per call


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


_JSON_COERCERS = [(column, names, _COERCERS[SAMPLES_SCHEMA.field(column).type]) for column, names in _JSON_FIELDS]


def _checked_tar_row(
    source: ShardSource, sample: _TarSample, options: ReaderOptions, report: ShardReadReport
) -> dict[str, Any]:
    try:
        return _tar_row(source, sample, options, report)
    except Exception as exc:  # a bug, not a bad sample: fail the partition, naming the file and the sample
        raise ShardReadError(
            f"cannot read sample {sample.row_key} of shard file {source.url}: {type(exc).__name__}: "
            f"{stable_text(exc)}"
        ) from exc


def _new_row(source: ShardSource, key: str) -> dict[str, Any]:
    return {
        "shard": source.key,
        "key": key,
        "source_format": "webdataset",
        "has_image": False,
        "status": STATUS_OK,
        "error_kind": None,
        "error": None,
    }


def _tar_row(
    source: ShardSource, sample: _TarSample, options: ReaderOptions, report: ShardReadReport
) -> dict[str, Any]:
    key, members = sample.row_key, sample.members
    row = _new_row(source, key)
    printable = printable_key(sample.raw_key)
    if key != printable:
        _add_error(row, "duplicate_key", f"key {printable} appears again after its sample was closed")
    if printable != sample.raw_key:
        _add_error(row, "non_utf8_key", "tar member name is not valid UTF-8; the key keeps its bytes as \\x escapes")
    if sample.cut:
        # Nothing of the sample was read: it is not missing its members, the tar was cut.
        _add_error(row, "truncated_tar", report.truncated or "tar ends inside the first member of this sample")
        return row

    meta: dict[str, Any] = {}
    if "json" not in members:
        _add_error(row, "missing_json", "no .json member")
    else:
        try:
            parsed = _JSON.decode(members["json"].decode("utf-8"))
            if not isinstance(parsed, dict):
                raise ValueError(f"expected a JSON object, got {type(parsed).__name__}")
            meta = parsed
        except (UnicodeDecodeError, ValueError) as exc:
            _add_error(row, "malformed_json", f"malformed .json: {exc}")
        except RecursionError:  # thousands of nested arrays/objects
            _add_error(row, "malformed_json", "malformed .json: nested too deeply to parse")

    lowered = _lowered(meta)
    for column, names, coerce in _JSON_COERCERS:
        name, raw = _lookup_lowered(lowered, *names)
        row[column], problem = coerce(raw)
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
    row.update(image_member=printable_key(sample.names[image_ext]), image_bytes=len(data), sha256=digest)
    _, declared = _lookup_lowered(lowered, "sha256")
    # Only a clean string is compared (a lone surrogate could not go into the error text).
    declared = coerce_str(declared)[0] if isinstance(declared, str) else None
    if declared and declared.lower() != digest:
        _add_error(row, "sha256_mismatch", f"image sha256 {digest[:12]}… differs from the json's {declared[:12]}…")
    check = check_image(data, max_pixels=options.max_image_pixels, verify=options.verify_images)
    row["image_format"] = check.format
    row["image_orientation"] = check.orientation
    if check.width is not None:
        row["width"], row["height"] = check.width, check.height
    if check.ok:
        row["has_image"] = True
    else:
        _add_error(row, check.error_kind or "corrupt_image", check.error or "unreadable image")
    return row


# ---------------------------------------------------------------------------------------- img2dataset sidecars

SIDECAR_SUCCESS = "success"
# samples column <- names in the sidecar parquet (img2dataset's columns plus LAION's; first present wins)
_SIDECAR_FIELDS = (("caption", ("caption", "text")),) + _JSON_FIELDS


@dataclass
class Sidecar:
    """What img2dataset's files beside a tar say it should hold."""

    parquet_name: str | None = None
    keys: list[str] | None = None  # keys listed as downloaded, printable, in sidecar order, each once
    index: dict[str, int] = field(default_factory=dict)  # key -> its row in ``metadata``
    metadata: pa.Table | None = None  # the sidecar's metadata columns (see _SIDECAR_FIELDS)
    columns: dict[str, str] = field(default_factory=dict)  # samples column -> sidecar column
    stats_successes: int | None = None


def _name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _column_named(names: list[str], *candidates: str) -> str | None:
    lowered = {name.lower(): name for name in reversed(names)}  # the first spelling wins
    return next((lowered[c.lower()] for c in candidates if c.lower() in lowered), None)


def read_sidecars(source: ShardSource, report: ShardReadReport) -> Sidecar:
    """Read ``NNNNN.parquet`` and ``NNNNN_stats.json`` where present; record what they say (and what is wrong
    with them) in ``report``. Never raises for a bad sidecar."""
    sidecar = Sidecar()
    errors: list[str] = []
    failed: int | None = None
    if source.metadata_parquet_url:
        sidecar.parquet_name = _name(source.metadata_parquet_url)
        try:
            failed = _read_sidecar_parquet(source.metadata_parquet_url, sidecar, errors)
        except Exception as exc:  # an unreadable sidecar is recorded, never a reason to fail the shard
            errors.append(f"cannot read {sidecar.parquet_name}: {type(exc).__name__}: {stable_text(exc)}")
            sidecar.keys, sidecar.index, sidecar.metadata, failed = None, {}, None, None
        if sidecar.keys is not None:
            report.sidecars.append(sidecar.parquet_name)
    if source.stats_url:
        stats_name = _name(source.stats_url)
        counts = _read_sidecar_stats(source.stats_url, stats_name, errors)
        if counts is not None:
            report.sidecars.append(stats_name)
            sidecar.stats_successes, count = counts
            if sidecar.keys is not None and sidecar.stats_successes is not None:
                if sidecar.stats_successes != len(sidecar.keys):
                    errors.append(f"{stats_name} counts {sidecar.stats_successes} successes but "
                                  f"{sidecar.parquet_name} lists {len(sidecar.keys)} keys as downloaded")
            elif sidecar.keys is None and sidecar.stats_successes is not None and count is not None:
                failed = max(0, count - sidecar.stats_successes)
    if sidecar.keys is not None:
        report.expected_samples = len(sidecar.keys)
    elif sidecar.stats_successes is not None:
        report.expected_samples = sidecar.stats_successes
    report.sidecar_failed_downloads = failed
    report.sidecar_error = "; ".join(errors) or None
    return sidecar


def _read_sidecar_parquet(url: str, sidecar: Sidecar, errors: list[str]) -> int | None:
    """Fill ``sidecar`` from the parquet; return how many rows are not successes (None if unusable)."""
    name = sidecar.parquet_name
    with fsspec.open(url, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        names = parquet.schema_arrow.names
        key_column = _column_named(names, "key")
        status_column = _column_named(names, "status")
        if key_column is None or status_column is None:
            missing = "key" if key_column is None else "status"
            errors.append(f"{name} has no {missing} column; its keys are not used")
            return None
        sidecar.columns = {
            target: column for target, candidates in _SIDECAR_FIELDS
            if (column := _column_named(names, *candidates)) is not None
        }
        table = parquet.read(columns=sorted({key_column, status_column, *sidecar.columns.values()}))
    keys = table.column(key_column).combine_chunks()
    if pa.types.is_dictionary(keys.type):
        keys = keys.dictionary_decode()
    if not any(test(keys.type) for test in _TEXT_TYPES):
        errors.append(f"{name} key column holds {keys.type} values, not text; its keys are not used")
        return None
    statuses, _ = coerce_column(table.column(status_column).combine_chunks(), pa.string())
    sidecar.metadata = table.select(sorted(set(sidecar.columns.values())))
    sidecar.keys = []
    failed = unusable = repeated = 0
    for row, (raw, status) in enumerate(zip(_as_bytes(keys).to_pylist(), statuses.to_pylist())):
        if status != SIDECAR_SUCCESS:
            failed += 1  # a failed download (or resize) is not in the tar: no sample, no row
            continue
        if not raw:
            unusable += 1
            continue
        # As tarfile reads a member name: invalid UTF-8 bytes as lone surrogates, then \xNN escapes.
        key = printable_key(raw.decode("utf-8", "surrogateescape"))
        if key in sidecar.index:
            repeated += 1
            continue
        sidecar.index[key] = row
        sidecar.keys.append(key)
    if unusable:
        errors.append(f"{name} lists {unusable} downloaded rows without a key")
    if repeated:
        errors.append(f"{name} lists {repeated} downloaded keys more than once")
    return failed


def _read_sidecar_stats(url: str, name: str, errors: list[str]) -> tuple[int | None, int | None] | None:
    """(successes, count) from ``NNNNN_stats.json``, each None when absent or not a count; None if unreadable."""
    try:
        with fsspec.open(url, "rb") as handle:
            stats = json.loads(handle.read())
    except RecursionError:
        errors.append(f"cannot read {name}: nested too deeply to parse")
        return None
    except Exception as exc:
        errors.append(f"cannot read {name}: {type(exc).__name__}: {stable_text(exc)}")
        return None
    if not isinstance(stats, dict):
        errors.append(f"{name} is not a JSON object")
        return None

    def count(field_name: str) -> int | None:
        value = stats.get(field_name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if value is not None or field_name == "successes":
            errors.append(f"{name} {field_name}: expected a count, got {describe_value(value)}")
        return None

    return count("successes"), count("count")


def _sidecar_metadata(row: dict[str, Any], sidecar: Sidecar, keys: list[str]) -> list[dict[str, Any]]:
    """Copies of ``row`` with the sidecar's url, caption and LAION columns for ``keys``, coerced as a tar's json
    is (a bad value is nulled and named in the row's error)."""
    rows = [dict(row, key=key) for key in keys]
    if sidecar.metadata is None or not rows:
        return rows
    picked = sidecar.metadata.take(pa.array([sidecar.index[key] for key in keys], pa.int64()))
    for target, column in sidecar.columns.items():
        utf8_kind = "non_utf8_caption" if target == "caption" else BAD_VALUE
        values, problems = coerce_column(
            picked.column(column).combine_chunks(), SAMPLES_SCHEMA.field(target).type, utf8_kind
        )
        for i, value in enumerate(values.to_pylist()):
            rows[i][target] = value
            if i in problems:
                kind, problem = problems[i]
                _add_error(rows[i], kind, f"sidecar {sidecar.parquet_name} {column}: {problem}")
    return rows


def _accounted_rows(
    source: ShardSource,
    tar_rows: Iterator[tuple[_TarSample, dict[str, Any]]],
    sidecar: Sidecar,
    report: ShardReadReport,
) -> Iterator[dict[str, Any]]:
    """The tar's rows, then one ``missing_from_tar`` row per key the sidecar lists as downloaded and the tar
    lacks (in sidecar order); the counts and whether the tar ended early go to ``report``."""
    present: set[str] = set()
    for sample, row in tar_rows:
        report.read_samples += 1
        key = printable_key(sample.raw_key)
        present.add(key)
        if sample.cut and key in sidecar.index:  # the tar cut it: its metadata can still come from the sidecar
            row = {**_sidecar_metadata(row, sidecar, [key])[0], "key": row["key"]}
        yield row

    if sidecar.keys is None:
        # Only counts (or nothing) to go by: a tar holding fewer samples than the stats promise ended early.
        expected = report.expected_samples
        if expected is not None and report.read_samples < expected:
            _ended_early(report, report.read_samples, expected)
        report.ended_early = report.ended_early or report.truncated is not None
        return

    report.not_in_sidecar = sum(1 for key in present if key not in sidecar.index)
    read_positions = [sidecar.index[key] for key in present if key in sidecar.index]
    last_read = max(read_positions, default=-1)
    missing = [key for key in sidecar.keys if key not in present]
    trailing = sum(1 for key in missing if sidecar.index[key] > last_read)
    report.missing_from_tar = len(missing)
    if trailing:
        _ended_early(report, len(sidecar.keys) - len(missing), len(sidecar.keys))
    report.ended_early = report.ended_early or report.truncated is not None
    for start in range(0, len(missing), DEFAULT_BATCH_ROWS):
        keys = missing[start:start + DEFAULT_BATCH_ROWS]
        for row in _sidecar_metadata(_new_row(source, ""), sidecar, keys):
            after_end = sidecar.index[row["key"]] > last_read
            _add_error(row, "missing_from_tar",
                       f"not in the tar: img2dataset sidecar {sidecar.parquet_name} lists it as downloaded"
                       + ("; the tar ends before it" if after_end else ""))
            yield row


def _ended_early(report: ShardReadReport, read: int, expected: int) -> None:
    report.ended_early = True
    said = f"tar ends after {read} of {expected} expected samples (img2dataset sidecar)"
    report.truncated = f"{said}; {report.truncated}" if report.truncated else said


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
        raise ShardReadError(
            f"cannot open shard file {source.url} as parquet: {type(exc).__name__}: {stable_text(exc)}"
        ) from exc

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
                f"cannot read shard file {source.url} as parquet after row {offset}: {type(exc).__name__}: "
                f"{stable_text(exc)}"
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
            "image_orientation": pa.nulls(n, pa.int64()),
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
