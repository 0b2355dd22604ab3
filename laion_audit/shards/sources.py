"""Finding input shards under a root folder or bucket, and naming them.

A shard is identified by a 5-digit zero-padded key (``00000``..``41407``) that becomes its Dagster partition
key. Two input formats are recognised per shard, and the format is decided per shard, not per dataset:

- ``webdataset``: ``NNNNN.tar`` as img2dataset writes it, optionally with ``NNNNN.parquet`` and
  ``NNNNN_stats.json`` beside it;
- ``metadata_parquet``: a LAION metadata parquet without images (``part-00017-<uuid>.snappy.parquet`` in the
  LAION-400M release, or any ``*.parquet`` whose name carries a shard number).

The root is a local path or any fsspec URI, so the same code lists a laptop folder and an s3:// prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import fsspec

ShardFormat = Literal["webdataset", "metadata_parquet"]

SHARD_KEY_WIDTH = 5
MAX_SHARD_NUMBER = 10**SHARD_KEY_WIDTH - 1
SHARD_KEY_PATTERN = re.compile(r"\d{5}")
# The first run of digits that is not glued to a preceding letter or digit: "00017.tar" -> 17,
# "part-00017-5b54c5d5-....snappy.parquet" -> 17, "laion400m_text_sample_1000.parquet" -> 1000.
DEFAULT_SHARD_NUMBER_PATTERN = r"(?<![0-9A-Za-z])(\d{1,9})(?![0-9])"


class ShardDiscoveryError(ValueError):
    """The listing under a shard root is ambiguous (two files claim one shard key)."""


class ShardNotFoundError(FileNotFoundError):
    """No input file under the root belongs to the requested shard key."""


def format_shard_key(number: int) -> str:
    if not 0 <= number <= MAX_SHARD_NUMBER:
        raise ValueError(f"shard numbers are 0..{MAX_SHARD_NUMBER}, got {number}")
    return f"{number:0{SHARD_KEY_WIDTH}d}"


def validate_shard_key(key: str) -> str:
    """A partition key is exactly five digits before it becomes part of any path ("../x" must never be one)."""
    if not isinstance(key, str) or not SHARD_KEY_PATTERN.fullmatch(key):
        raise ValueError(f"invalid shard key {key!r}: shard keys are five digits, e.g. 00017")
    return key


@dataclass(frozen=True)
class ShardSource:
    """Where one shard's input lives; ``url`` is the file to read, ``sidecars`` are optional companions.

    ``version`` identifies the file's current content (see :func:`file_version`); it is part of the `samples`
    recipe, so a shard file replaced after ingest makes its `samples` partition stale.
    """

    key: str
    format: ShardFormat
    url: str
    metadata_parquet_url: str | None = None
    stats_url: str | None = None
    version: str | None = None
    size: int | None = None


def file_version(info: dict) -> str:
    """A version string for a file from its fsspec ``info``: the store's own version when it has one.

    Object stores give an ETag or generation that changes with the content; a local file has only its size
    and modification time, which change on every rewrite (a copy in progress included).
    """
    for field_name in ("VersionId", "ETag", "generation", "etag", "md5Hash"):
        value = info.get(field_name)
        if value:
            return f"{field_name}={str(value).strip(chr(34))}"
    mtime = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("updated")
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    return f"size={info.get('size')};mtime={mtime}"


def _join(root: str, name: str) -> str:
    return root.rstrip("/") + "/" + name


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def shard_number_from_name(name: str, pattern: str = DEFAULT_SHARD_NUMBER_PATTERN) -> int | None:
    match = re.search(pattern, name)
    return int(match.group(1)) if match else None


def _list(root: str) -> dict[str, dict]:
    """One listing of ``root``: file name -> fsspec info (size, mtime or ETag)."""
    fs, path = fsspec.core.url_to_fs(root)
    if not fs.exists(path):
        raise FileNotFoundError(f"shard root does not exist: {root}")
    return {_basename(info["name"]): info for info in fs.ls(path, detail=True) if info.get("type") != "directory"}


@dataclass
class DiscoveryReport:
    """What a listing held besides shards: keys claimed by two files (skipped, not guessed) and names that are
    not shards at all, with the reason, so nothing under the root is ignored without a word."""

    duplicates: dict[str, list[str]] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)  # file name -> why

    def summary(self) -> str:
        parts = []
        if self.duplicates:
            parts.append("skipped shard keys claimed by several files: " + "; ".join(
                f"{key} ({', '.join(names)})" for key, names in sorted(self.duplicates.items())))
        if self.ignored:
            reasons: dict[str, int] = {}
            for why in self.ignored.values():
                reasons[why] = reasons.get(why, 0) + 1
            parts.append(f"ignored {len(self.ignored)} files: " + ", ".join(
                f"{n} {why}" for why, n in sorted(reasons.items())))
        return "; ".join(parts)


def discover_shards(root: str, name_pattern: str = DEFAULT_SHARD_NUMBER_PATTERN) -> dict[str, ShardSource]:
    """Every shard under ``root``; a key claimed by two files is an error naming both (see scan_shards)."""
    sources, report = scan_shards(root, name_pattern)
    if report.duplicates:
        key, names = sorted(report.duplicates.items())[0]
        raise ShardDiscoveryError(
            f"two files under {root} map to shard {key}: {names[0]!r} and {names[1]!r}; "
            "rename one or set a shard name pattern that tells them apart"
        )
    return sources


def scan_shards(root: str, name_pattern: str = DEFAULT_SHARD_NUMBER_PATTERN) -> tuple[dict[str, ShardSource],
                                                                                       DiscoveryReport]:
    """List ``root`` (non-recursively): the shards found, keyed by shard key, and a report of the rest.

    A tar wins over a parquet with the same number (the parquet is then img2dataset's sidecar). Two tars, or two
    metadata parquets, with the same number are reported and that key is skipped: guessing would make a
    partition's content depend on listing order, and refusing the whole listing would stop every other shard.
    """
    listing = _list(root)
    report = DiscoveryReport()
    tars: dict[str, str] = {}
    parquets: dict[str, str] = {}
    stats: dict[str, str] = {}
    for name in sorted(listing):
        if name.startswith(".") or name.startswith("_"):
            continue  # hidden files and writers' temporaries
        number = shard_number_from_name(name, name_pattern)
        if name.endswith("_stats.json"):
            bucket = stats
        elif name.endswith(".tar"):
            bucket = tars
        elif name.endswith(".parquet"):
            bucket = parquets
        else:
            if name != "manifest.json" and not name.endswith(".json"):
                report.ignored[name] = "not a .tar or .parquet"
            continue
        if number is None:
            report.ignored[name] = "without a shard number"
            continue
        if number > MAX_SHARD_NUMBER:
            report.ignored[name] = f"with a shard number above {MAX_SHARD_NUMBER}"
            continue
        key = format_shard_key(number)
        if key in bucket and bucket is not stats:
            report.duplicates.setdefault(key, [bucket[key]]).append(name)
            continue
        bucket[key] = name
    for key in report.duplicates:
        tars.pop(key, None)
        parquets.pop(key, None)

    sources: dict[str, ShardSource] = {}
    # NNNNN.parquet beside NNNNN_stats.json is img2dataset's sidecar, not a metadata shard: without its tar the
    # shard is incomplete (the tar is missing or still being copied) and is not offered at all.
    for key in sorted(set(tars) | (set(parquets) - set(stats))):
        if key in tars:
            info = listing[tars[key]]
            sources[key] = ShardSource(
                key=key,
                format="webdataset",
                url=_join(root, tars[key]),
                metadata_parquet_url=_join(root, parquets[key]) if key in parquets else None,
                stats_url=_join(root, stats[key]) if key in stats else None,
                version=file_version(info),
                size=info.get("size"),
            )
        else:
            info = listing[parquets[key]]
            sources[key] = ShardSource(key=key, format="metadata_parquet", url=_join(root, parquets[key]),
                                       version=file_version(info), size=info.get("size"))
    return sources, report


def locate_shard(root: str, key: str, name_pattern: str = DEFAULT_SHARD_NUMBER_PATTERN) -> ShardSource:
    """Resolve one partition key to its input, trying the img2dataset names before a full listing."""
    validate_shard_key(key)
    fs, path = fsspec.core.url_to_fs(root)
    tar_path = _join(path, f"{key}.tar")
    if fs.exists(tar_path):
        sidecar = _join(path, f"{key}.parquet")
        stats = _join(path, f"{key}_stats.json")
        info = fs.info(tar_path)
        return ShardSource(
            key=key,
            format="webdataset",
            url=_join(root, f"{key}.tar"),
            metadata_parquet_url=_join(root, f"{key}.parquet") if fs.exists(sidecar) else None,
            stats_url=_join(root, f"{key}_stats.json") if fs.exists(stats) else None,
            version=file_version(info),
            size=info.get("size"),
        )
    sources, report = scan_shards(root, name_pattern)
    if key in report.duplicates:
        raise ShardDiscoveryError(f"two files under {root} map to shard {key}: "
                                  f"{', '.join(map(repr, report.duplicates[key]))}; rename one")
    if key not in sources:
        raise ShardNotFoundError(f"no input file for shard {key} under {root}")
    return sources[key]
