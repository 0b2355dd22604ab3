"""Which shards a dataset-level table covers: all complete ones, or a list and/or ranges of shard keys.

One store can hold the shards of two datasets (say LAION-400M metadata 00000-00031 and a user's own crawl
from 01000): a table over "all" would mix them without a word. A selection written in the asset's config,
e.g. ``"00000-00031"`` or ``"3, 7, 10-12"``, names the dataset; the table records the selection and the shards
it read, and refuses a selection it cannot honour (a named shard without complete inputs) instead of
quietly covering less.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from laion_audit.shards.sources import format_shard_key

ALL = "all"


class ShardSelectionError(ValueError):
    """A selection that is malformed, or that names shards the table cannot read."""


@dataclass(frozen=True)
class ShardSelection:
    spec: str
    keys: frozenset[str] = frozenset()
    ranges: tuple[tuple[str, str], ...] = ()

    @property
    def is_all(self) -> bool:
        return self.spec == ALL

    def includes(self, key: str) -> bool:
        return self.is_all or key in self.keys or any(low <= key <= high for low, high in self.ranges)

    def select(self, keys: Iterable[str]) -> list[str]:
        return sorted(key for key in keys if self.includes(key))

    def unavailable(self, complete: Iterable[str], registered: Iterable[str] = ()) -> list[str]:
        """Shards the selection asks for that have no complete input: every named key, and every registered
        shard inside a range. "all" means the complete shards, so it asks for nothing more."""
        if self.is_all:
            return []
        done = set(complete)
        wanted = set(self.keys) | {key for key in registered if self.includes(key)}
        return sorted(wanted - done)

    def record(self, shards: Iterable[str]) -> dict:
        """What a report stores: the selection as written and normalised, and the shards it read."""
        return {"spec": self.spec, "keys": sorted(self.keys), "ranges": [list(r) for r in self.ranges],
                "shards": sorted(shards)}


def _key(text: str, spec: str) -> str:
    try:
        return format_shard_key(int(text))
    except ValueError:
        raise ShardSelectionError(f"shard selection {spec!r}: {text!r} is not a shard number") from None


def parse_shard_selection(spec: str) -> ShardSelection:
    """"all" (or empty), or comma-separated shard numbers and inclusive ranges ``A-B`` / ``A..B``."""
    text = (spec or ALL).strip()
    if text.lower() == ALL:
        return ShardSelection(ALL)
    keys: set[str] = set()
    ranges: list[tuple[str, str]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise ShardSelectionError(f"shard selection {spec!r} has an empty item")
        bounds = item.split("..") if ".." in item else item.split("-")
        if len(bounds) == 1:
            keys.add(_key(bounds[0], spec))
        elif len(bounds) == 2:
            low, high = _key(bounds[0], spec), _key(bounds[1], spec)
            if low > high:
                raise ShardSelectionError(f"shard selection {spec!r}: range {item!r} runs backwards")
            ranges.append((low, high))
        else:
            raise ShardSelectionError(f"shard selection {spec!r}: cannot read {item!r}")
    normalised = ", ".join(sorted(keys) + [f"{low}-{high}" for low, high in sorted(ranges)])
    return ShardSelection(normalised, frozenset(keys), tuple(sorted(ranges)))
