"""The loop every shard-partitioned asset shares: one or many shards per run, skip the shards complete for
this recipe, finish the good shards even when one fails, and report per-shard data versions.

A Dagster run is all-or-nothing, so with BackfillPolicy.multi_run a run over 8 shards that fails on the 7th
would otherwise redo all 8 and report none. Here every finished shard is reported as materialized (with its own
data version) before the run fails naming the shards that did not finish, and completion markers make the
retry cheap. A failure that cannot heal by retrying (a missing or unreadable input) fails without retries;
anything else (CUDA out of memory, an evicted pod, a storage hiccup) keeps the asset's retry policy.
"""

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
)

from laion_audit.ops.code_identity import code_identity_tags
from laion_audit.shards.recipe import Recipe
from laion_audit.shards.store import Provenance, ShardStore

DATA_VERSION_TAG = "dagster/data_version"  # the event tag Dagster reads a data version from


class UpstreamNotReadyError(RuntimeError):
    """An upstream shard file is missing or incomplete; only this shard fails, and retrying will not help."""


class UpstreamChangedError(RuntimeError):
    """An upstream shard was republished while this shard read it; a retry reads the new version."""


def upstream_version(store: ShardStore, asset: str, shard: str, restricted: bool = False) -> str:
    """The data version of an upstream partition, from its completion marker."""
    marker = store.read_marker(asset, shard, restricted)
    if marker is None:
        raise UpstreamNotReadyError(f"{asset} is not complete for shard {shard}; materialize it first")
    if "data_version" not in marker:
        raise UpstreamNotReadyError(f"{asset} shard {shard} was written before recipes existed; re-materialize it")
    return marker["data_version"]


def read_upstream(store: ShardStore, asset: str, shard: str, version: str, restricted: bool = False) -> pa.Table:
    """Read an upstream shard table, making sure it is still the version the recipe names."""
    table = store.read_table(asset, shard, restricted)
    if upstream_version(store, asset, shard, restricted) != version:
        raise UpstreamChangedError(f"{asset} shard {shard} changed while it was being read")
    return table


@dataclass(frozen=True)
class ShardOutcome:
    shard: str
    skipped: bool
    marker: dict[str, Any] = field(default_factory=dict)
    path: str | None = None


def write_shard(
    context: AssetExecutionContext,
    store: ShardStore,
    shard: str,
    recipe: Recipe,
    compute: Callable[[], tuple[pa.Table, dict[str, Any]]],
    *,
    restricted: bool = False,
    force: bool = False,
) -> ShardOutcome:
    """Skip the shard if complete for this recipe, or holding a current import; else compute and publish it.

    An imported partition (``laion-audit import``) is kept while it is current: same code version, same upstream
    data versions. The import is the user's statement about the data, and the nightly schedules request whole
    stages (boxes with votes), so without this a run for the missing votes would silently replace imported boxes
    with a detector's. ``force`` replaces it; so does changed upstream data, which the import no longer describes.
    """
    if not force and (marker := store.complete_marker(recipe, shard, restricted)) is not None:
        return ShardOutcome(shard, True, marker, store.data_url(recipe.asset, shard, restricted, marker=marker))
    if not force and (marker := current_import(store, recipe, shard, restricted)) is not None:
        return ShardOutcome(shard, True, marker, store.data_url(recipe.asset, shard, restricted, marker=marker))
    table, extra = compute()
    marker = store.write_table(Provenance(recipe, shard, context.run.run_id), table, restricted=restricted,
                               marker_extra=extra)
    return ShardOutcome(shard, False, marker, store.data_url(recipe.asset, shard, restricted, marker=marker))


def current_import(store: ShardStore, recipe: Recipe, shard: str, restricted: bool = False) -> dict[str, Any] | None:
    """The shard's marker if it holds an import made for this code version and these upstream versions."""
    marker = store.read_marker(recipe.asset, shard, restricted)
    recorded = Recipe.from_marker(marker) if marker else None
    if (recorded is None or not recorded.imported or recorded.code_version != recipe.code_version
            or dict(recorded.upstream) != dict(recipe.upstream)):
        return None
    return marker if store.fs.exists(store.data_path(recipe.asset, shard, restricted, marker)) else None


def _shard_metadata(outcome: ShardOutcome, names: Sequence[str]) -> dict[str, Any]:
    marker = outcome.marker
    metadata: dict[str, Any] = {
        "rows": marker.get("rows"),
        "errors": marker.get("errors"),
        "recipe_sha256": str(marker.get("recipe_sha256", ""))[:16],
        "skipped_complete": outcome.skipped,
    }
    if outcome.path:
        metadata["path"] = MetadataValue.path(outcome.path)
    for name in names:
        value = marker.get(name)
        if value is not None:
            metadata[name] = MetadataValue.json(value) if isinstance(value, dict | list) else value
    return {k: v for k, v in metadata.items() if v is not None}


def materialize_shards(
    context: AssetExecutionContext,
    process: Callable[[str], ShardOutcome],
    *,
    shard_errors: tuple[type[BaseException], ...],
    totals: Sequence[str] = ("rows", "errors"),
    single_shard_metadata: Sequence[str] = (),
    extra_metadata: dict[str, Any] | None = None,
) -> Iterator[MaterializeResult | AssetMaterialization]:
    """Run ``process`` for each partition key of the run; yield what Dagster should record.

    Every shard is processed whatever happened to the ones before it. ``shard_errors`` are the exceptions that
    cannot heal on retry (a missing or unreadable input); any other exception may (CUDA out of memory, a
    storage hiccup). At the end the finished shards are reported as materialized and the run fails naming each
    failed shard and why, with retries allowed only if some failure may heal.
    """
    outcomes: list[ShardOutcome] = []
    failures: list[str] = []
    retryable = False
    for key in context.partition_keys:
        try:
            outcome = process(key)
        except shard_errors as exc:
            context.log.error(f"shard {key} failed: {exc}")
            failures.append(f"shard {key}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - one shard's fault must not hide its neighbours
            context.log.error(f"shard {key} failed with {type(exc).__name__}: {exc}")
            failures.append(f"shard {key}: {type(exc).__name__}: {exc}")
            retryable = True
            continue
        counts = ", ".join(f"{name} {outcome.marker.get(name)}" for name in totals)
        context.log.info(f"shard {key}: {counts}" + (" (already complete, skipped)" if outcome.skipped else ""))
        outcomes.append(outcome)

    tags = code_identity_tags()
    if failures:
        for outcome in outcomes:
            yield AssetMaterialization(
                asset_key=context.asset_key, partition=outcome.shard,
                metadata=_shard_metadata(outcome, single_shard_metadata),
                tags={**tags, DATA_VERSION_TAG: outcome.marker["data_version"]},
            )
        raise Failure(
            description="; ".join(failures),
            metadata={"failed_shards": len(failures), "completed_shards": len(outcomes)},
            allow_retries=retryable,
        )

    for outcome in outcomes:
        context.add_asset_metadata(_shard_metadata(outcome, single_shard_metadata), partition_key=outcome.shard)
    metadata: dict[str, Any] = {
        "shards": len(outcomes),
        "shards_skipped_complete": sum(o.skipped for o in outcomes),
        **{f"total_{name}": sum(o.marker.get(name) or 0 for o in outcomes) for name in totals},
        **(extra_metadata or {}),
    }
    yield MaterializeResult(metadata=metadata, data_version=_run_data_version(outcomes), tags=tags)


def _run_data_version(outcomes: Sequence[ShardOutcome]) -> DataVersion | None:
    """One shard: its own data version. Several: Dagster takes one version for every partition of a successful
    run, so it gets a hash of all of theirs, which changes whenever any shard's recipe or output does (it can
    also change when a shard is re-run beside other shards: conservative, never blind). The markers keep each
    shard's own version, and the lineage checks use those."""
    if not outcomes:
        return None
    if len(outcomes) == 1:
        return DataVersion(outcomes[0].marker["data_version"])
    joined = ",".join(f"{o.shard}={o.marker['data_version']}" for o in sorted(outcomes, key=lambda o: o.shard))
    return DataVersion(hashlib.sha256(joined.encode()).hexdigest()[:24])
