"""Pure planning for the discovery sensor and the backfill schedule.

Partition keys are registered in sorted order, so that Dagster's partition order (insertion order for
dynamic partitions) matches shard order and a key range such as 00100..00199 means what it says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def new_shard_keys(found: Iterable[str], known: Iterable[str], limit: int) -> list[str]:
    """The next ``limit`` shard keys that exist under the root but are not registered yet, sorted."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return sorted(set(found) - set(known))[:limit]


def missing_ranges(
    registered: Sequence[str], done: Iterable[str], in_flight: Iterable[str], max_per_run: int, max_runs: int
) -> list[tuple[str, str]]:
    """Contiguous runs (in registration order) of partitions that are neither done nor in flight.

    Each returned (first, last) range holds at most ``max_per_run`` partitions, so a backfill of new shards
    becomes a few multi-shard runs instead of one run per shard.
    """
    if max_per_run < 1 or max_runs < 1:
        raise ValueError("max_per_run and max_runs must be at least 1")
    skip = set(done) | set(in_flight)
    ranges: list[tuple[str, str]] = []
    current: list[str] = []
    for key in registered:
        if key in skip:
            if current:
                ranges.append((current[0], current[-1]))
                current = []
            continue
        current.append(key)
        if len(current) == max_per_run:
            ranges.append((current[0], current[-1]))
            current = []
        if len(ranges) >= max_runs:
            return ranges[:max_runs]
    if current:
        ranges.append((current[0], current[-1]))
    return ranges[:max_runs]


def stable_keys(
    candidates: Mapping[str, tuple[str | None, bool]],
    pending: Mapping[str, Mapping[str, Any]],
    now: float,
    settle_seconds: float,
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Which candidate shards are safe to register, and what to remember about the others.

    ``candidates`` maps a shard key to (file version, has img2dataset _stats.json). img2dataset writes the
    stats file last, so its presence means the shard is complete. Without it, a shard is stable once the same
    version (size and mtime, or ETag) has been seen for ``settle_seconds``: a file still being copied keeps
    changing and waits; a settle time of 0 turns the wait off. ``pending`` is the previous tick's memory ({key: {"version", "since"}}).
    """
    stable: list[str] = []
    still_pending: dict[str, dict[str, Any]] = {}
    for key in sorted(candidates):
        version, has_stats = candidates[key]
        if has_stats or settle_seconds <= 0:
            stable.append(key)
            continue
        seen = pending.get(key)
        if seen is not None and seen.get("version") == version:
            if now - float(seen["since"]) >= settle_seconds:
                stable.append(key)
            else:
                still_pending[key] = dict(seen)
        else:
            still_pending[key] = {"version": version, "since": now}
    return stable, still_pending
