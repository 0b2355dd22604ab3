"""What an aggregate read: the manifest of shard files and versions behind a published table.

Dagster stops tracking staleness past 100 upstream partitions, so each aggregate records for itself which shard
files (by content hash), code versions and model fingerprints it was computed from, publishes that manifest
next to its report, and uses the manifest's hash as its data version.

A table is only meaningful if every shard of an input was computed the same way, so each input must come from
one version set (code version, models and settings; see Recipe.version_set). By default a mix is refused;
callers that opt in report each combination of version sets separately instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import polars as pl

from laion_audit.shards.store import ShardStore


MixedVersions = Literal["refuse", "per_version_set"]
MIXED_VERSIONS_MODES = ("refuse", "per_version_set")
SHARDS_NAMED = 5
# The recipe setting in which a per-shard counts asset records the version sets of the inputs it summed.
INPUT_VERSION_SETS = "input_version_sets"


class MixedVersionsError(ValueError):
    """An input's shards come from more than one version set; combining them would publish a meaningless table."""


def marker_version_set(marker: Mapping[str, Any]) -> str:
    """The marker's version set; a marker written before they were recorded gets one of its own.

    That stand-in is derived from what old markers do record (code version and models), so an old shard never
    silently joins a recorded version set, nor do old shards of different code versions join each other.
    """
    if marker.get("version_set"):
        return str(marker["version_set"])
    legacy = {"code_version": marker.get("code_version"), "models": marker.get("models") or {}}
    return "unrecorded-" + hashlib.sha256(json.dumps(legacy, sort_keys=True).encode()).hexdigest()[:8]


def manifest_entry(marker: Mapping[str, Any]) -> dict[str, Any]:
    """What a table records of each shard it read; counts assets also name the version sets they were made from."""
    entry = {**{k: marker.get(k) for k in ("data_sha256", "data_version", "code_version", "models")},
             "version_set": marker_version_set(marker)}
    inputs = ((marker.get("recipe") or {}).get("settings") or {}).get(INPUT_VERSION_SETS)
    if inputs:
        entry["inputs"] = inputs
    return entry


def complete_inputs(store: ShardStore, inputs: Sequence[tuple[str, bool]]
                    ) -> tuple[dict[str, Any], dict[str, dict[str, dict[str, Any]]]]:
    """(manifest, markers): the manifest (see :func:`input_manifest`) and {asset: {shard: marker}} it came from,
    so the files read are exactly the ones the manifest names even while writers publish newer ones."""
    markers = {asset: store.complete_shards(asset, restricted) for asset, restricted in inputs}
    manifest = {asset: {shard: manifest_entry(marker) for shard, marker in by_shard.items()}
                for asset, by_shard in markers.items()}
    return manifest, markers


def input_manifest(store: ShardStore, inputs: Sequence[tuple[str, bool]]) -> dict[str, Any]:
    """{asset: {shard: {data_sha256, data_version, code_version, models, version_set}}} for every complete
    shard of each input asset."""
    return complete_inputs(store, inputs)[0]


def reduce_frames(parts: pl.LazyFrame | Iterable[pl.DataFrame], schema: Mapping[str, pl.DataType],
                  fold: Callable[[pl.LazyFrame], pl.LazyFrame], batch: int = 256) -> pl.DataFrame:
    """Reduce shard frames with ``fold`` (a lazy group-by that is its own re-reduction: fold(a + fold(b)) ==
    fold(a + b)): one streaming query over a lazy scan, or batches of frames folded into a running result.

    Either way memory holds the running result plus one batch, never all shards.
    """
    columns = list(schema)
    if isinstance(parts, pl.LazyFrame):
        return fold(parts.select(columns).cast(schema)).collect(engine="streaming")
    total = pl.DataFrame(schema=schema)
    pending: list[pl.DataFrame] = []
    for frame in parts:
        pending.append(frame.select(columns).cast(schema))
        if len(pending) >= batch:
            total, pending = fold(pl.concat([total, *pending]).lazy()).collect(), []
    return fold(pl.concat([total, *pending]).lazy()).collect()


def marked_frames(store: ShardStore, asset: str, restricted: bool, markers: Mapping[str, Mapping[str, Any]]
                  ) -> pl.LazyFrame | Iterator[pl.DataFrame]:
    """The shard files ``markers`` name: a lazy scan where polars reads the store itself, else one frame at a
    time through fsspec. Never a glob, which would pick up files still being written."""
    shards = sorted(markers)
    if store.polars_can_scan:
        return pl.scan_parquet([store.data_url(asset, shard, restricted, marker=markers[shard]) for shard in shards])
    return (pl.from_arrow(store.read_marked(asset, shard, markers[shard], restricted)) for shard in shards)


def version_sets(manifest: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """{asset: {version_set: [shards, sorted]}}."""
    found: dict[str, dict[str, list[str]]] = {}
    for asset, by_shard in manifest.items():
        groups = found.setdefault(asset, {})
        for shard in sorted(by_shard):
            groups.setdefault(by_shard[shard]["version_set"], []).append(shard)
    return found


def _describe(version_set: str, entry: Mapping[str, Any], shards: Sequence[str]) -> str:
    models = ", ".join(f"{role}={str(fp)[:12]}" for role, fp in sorted((entry.get("models") or {}).items()))
    named = ", ".join(shards[:SHARDS_NAMED]) + (f", … (+{len(shards) - SHARDS_NAMED} more)"
                                                if len(shards) > SHARDS_NAMED else "")
    count = f"{len(shards)} shard" + ("" if len(shards) == 1 else "s")
    inputs = "".join(f", {asset} {vs}" for asset, vs in sorted((entry.get("inputs") or {}).items()))
    return (f"  - version set {version_set}: code {entry.get('code_version')}, models {models or 'none'}{inputs}; "
            f"{count}: {named}")


def require_single_version_set(manifest: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise MixedVersionsError naming every version set (and some of its shards) of each mixed input."""
    mixed = {asset: groups for asset, groups in version_sets(manifest).items() if len(groups) > 1}
    if not mixed:
        return
    lines = ["Refusing to combine shards computed with different versions: a dataset table reads one version "
             "set (code version, models, settings) per input."]
    for asset, groups in mixed.items():
        lines.append(f"{asset} has {len(groups)} version sets:")
        lines.extend(_describe(vs, manifest[asset][shards[0]], shards) for vs, shards in sorted(groups.items()))
    lines.append(f"Re-materialize the stale shards of {', '.join(mixed)} so every shard has the same version set, "
                 "or set `mixed_versions: per_version_set` in this asset's config to report each version set "
                 "separately.")
    raise MixedVersionsError("\n".join(lines))


def split_by_version_set(manifest: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """[(label, sub_manifest)], one per combination of version sets across the input assets, sorted by label.

    A shard belongs to the group of its combination (its version set in each input that has it); the label
    reads "asset=version_set; ..." and each sub-manifest keeps every input asset as a key.
    """
    groups: dict[str, dict[str, Any]] = {}
    for shard in sorted({s for by_shard in manifest.values() for s in by_shard}):
        label = "; ".join(f"{asset}={by_shard[shard]['version_set']}"
                          for asset, by_shard in manifest.items() if shard in by_shard)
        sub = groups.setdefault(label, {asset: {} for asset in manifest})
        for asset, by_shard in manifest.items():
            if shard in by_shard:
                sub[asset][shard] = by_shard[shard]
    return sorted(groups.items())


def version_set_groups(manifest: Mapping[str, Mapping[str, Any]],
                       mixed_versions: str = "refuse") -> list[tuple[str, dict[str, Any]]]:
    """The groups a table is computed over: one when versions agree, else refuse or split per ``mixed_versions``."""
    if mixed_versions not in MIXED_VERSIONS_MODES:
        raise ValueError(f"mixed_versions must be one of {MIXED_VERSIONS_MODES}, not {mixed_versions!r}")
    if mixed_versions == "refuse":
        require_single_version_set(manifest)
    return split_by_version_set(manifest)


def manifest_hash(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def write_report(store: ShardStore, name: str, payload: dict[str, Any], markdown: str) -> tuple[str, str]:
    """Write <store>/reports/<name>.json and .md atomically; return their paths."""
    directory = store.reports_dir
    store.fs.makedirs(directory, exist_ok=True)
    paths = []
    for suffix, text in (("json", json.dumps(payload, indent=1, sort_keys=True, default=str)), ("md", markdown)):
        path = f"{directory}/{name}.{suffix}"
        tmp = f"{path}.tmp"
        with store.fs.open(tmp, "w") as handle:
            handle.write(text)
        store.fs.mv(tmp, path)
        paths.append(path)
    return paths[0], paths[1]
