"""Is a shard output still what its inputs would make today? Staleness through the whole chain, from markers.

Dagster marks only the direct dependents of a changed asset as stale, and stops tracking past 100 upstream
partitions. The audit record is the store: every marker names the recipe its file was made from (code
version, model fingerprints, settings, upstream data versions). A partition is

* ``missing``  — no marker;
* ``stale``    — its code version is not the current one, a model it used is no longer the staged one, an
  upstream partition it read has been re-materialized (or is itself stale: staleness is transitive, so labels
  built on boxes of a swapped detector are stale before the boxes are re-run), or its shard file changed;
* ``current``  — none of these.

Settings are deliberately not compared: a run with a non-default threshold is a choice, not an accident, and a
nightly schedule must not undo it. Changing a setting and re-running recomputes (the recipe differs), which is
what makes the choice take effect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from laion_audit.shards.recipe import Recipe
from laion_audit.shards.store import ShardStore

SHARD_FILE = "shard_file"


@dataclass(frozen=True)
class ShardAsset:
    """A per-shard output: its current code version, where it is stored, what it reads."""

    name: str
    code_version: str
    restricted: bool
    upstream: tuple[str, ...]


# The per-shard chain, in pipeline order. Code versions live here, in one table, so that a bump is one line
# and the staleness test and the assets cannot disagree about what "current code" is.
PER_SHARD_ASSETS: dict[str, ShardAsset] = {
    a.name: a
    for a in (
        ShardAsset("samples", "samples-4", False, (SHARD_FILE,)),
        ShardAsset("alt_text_scores", "alt_text_scores-3", False, ("samples",)),
        ShardAsset("person_boxes", "person_boxes-3", False, ("samples",)),
        ShardAsset("gender_votes", "votes-3", True, ("person_boxes",)),
        ShardAsset("race_votes", "votes-3", True, ("person_boxes",)),
        ShardAsset("gender_labels", "labels-2", True, ("person_boxes",)),
        ShardAsset("race_labels", "labels-2", True, ("person_boxes",)),
        ShardAsset("person_captions", "person_captions-3", True, ("person_boxes",)),
        ShardAsset("keyword_counts", "keyword_counts-1", False, ("samples",)),
        ShardAsset("group_counts", "group_counts-1", True, ("gender_labels", "race_labels", "alt_text_scores")),
        ShardAsset("clip_alt_text_similarity", "clip_alt_text_similarity-1", False, ("samples",)),
        ShardAsset("word_gender_counts", "word_gender_counts-1", True, ("samples", "gender_labels")),
        # Restricted like the captions they embed: an embedding can be inverted back to much of its caption.
        ShardAsset("caption_embeddings", "caption_embeddings-1", True, ("person_captions",)),
    )
}


def code_version(asset: str) -> str:
    return PER_SHARD_ASSETS[asset].code_version


def is_restricted(asset: str) -> bool:
    return PER_SHARD_ASSETS[asset].restricted


class ModelState(Protocol):
    """The models as they are now: the fingerprint a role would load, and what is wrong with it if anything."""

    def fingerprint(self, role: str) -> str | None: ...

    def problems(self, role: str) -> list[str]: ...


State = Literal["missing", "stale", "current"]


@dataclass(frozen=True)
class ShardStatus:
    asset: str
    shard: str
    state: State
    reasons: tuple[str, ...] = ()
    recorded_upstream: dict[str, str] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return f"{self.asset}[{self.shard}] {self.state}" + (": " + "; ".join(self.reasons) if self.reasons else "")


class LineageInspector:
    """Computes ShardStatus for (asset, shard) pairs, reading each marker once."""

    def __init__(self, store: ShardStore, models: ModelState, shard_file_version: Callable[[str], str | None]):
        self.store = store
        self.models = models
        self.shard_file_version = shard_file_version
        self._markers: dict[tuple[str, str], dict | None] = {}
        self._status: dict[tuple[str, str], ShardStatus] = {}

    def marker(self, asset: str, shard: str) -> dict | None:
        if (asset, shard) not in self._markers:
            self._markers[(asset, shard)] = self.store.read_marker(asset, shard, is_restricted(asset))
        return self._markers[(asset, shard)]

    def status(self, asset: str, shard: str) -> ShardStatus:
        if (asset, shard) not in self._status:
            self._status[(asset, shard)] = self._compute(asset, shard)
        return self._status[(asset, shard)]

    def _compute(self, asset: str, shard: str) -> ShardStatus:
        marker = self.marker(asset, shard)
        if marker is None:
            return ShardStatus(asset, shard, "missing")
        recipe = Recipe.from_marker(marker)
        if recipe is None:
            return ShardStatus(asset, shard, "stale", ("written before recipes were recorded",))
        reasons: list[str] = []
        if recipe.code_version != code_version(asset):
            reasons.append(f"code version {recipe.code_version} -> {code_version(asset)}")
        for role, recorded in sorted(recipe.models.items()):
            now = self.models.fingerprint(role)
            if now is None:
                reasons.append(f"model {role} is not available now")
            elif now != recorded:
                reasons.append(f"model {role} weights {recorded[:12]} -> {now[:12]}")
            reasons.extend(self.models.problems(role))
        for upstream, recorded in sorted(recipe.upstream.items()):
            reasons.extend(self._upstream_reasons(upstream, shard, recorded))
        return ShardStatus(asset, shard, "stale" if reasons else "current", tuple(reasons), dict(recipe.upstream))

    def _upstream_reasons(self, upstream: str, shard: str, recorded: str) -> list[str]:
        if upstream == SHARD_FILE:
            now = self.shard_file_version(shard)
            if now is None:
                return ["the shard file is gone"]
            return [] if now == recorded else [f"the shard file changed ({recorded} -> {now})"]
        marker = self.marker(upstream, shard)
        if marker is None:
            return [f"{upstream} is missing"]
        if marker.get("data_version") != recorded:
            return [f"{upstream} was re-materialized ({recorded[:12]} -> {str(marker.get('data_version'))[:12]})"]
        upstream_status = self.status(upstream, shard)
        if upstream_status.state == "stale":
            return [f"{upstream} is stale ({'; '.join(upstream_status.reasons)})"]
        return []

    def stale_or_missing(self, asset: str, shards: Iterable[str]) -> dict[str, ShardStatus]:
        return {s: st for s in shards if (st := self.status(asset, s)).state != "current"}
