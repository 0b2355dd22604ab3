"""The loop every shard-partitioned asset shares: one or many shards per run, skip the complete ones,
finish the good shards even when one fails, and report lean per-run metadata.

A Dagster run is all-or-nothing, so with BackfillPolicy.multi_run a run over 8 shards that fails on the 7th
would otherwise redo all 8; the completion markers make the retry cheap and this loop makes the failure name
the file that caused it.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetExecutionContext, DataVersion, Failure, MaterializeResult, MetadataValue
import pyarrow as pa

from laion_audit.shards.store import Provenance, ShardStore


class UpstreamNotReadyError(RuntimeError):
    """An upstream shard file is missing or incomplete; only this shard fails."""


def require(store: ShardStore, asset: str, shard: str, restricted: bool = False) -> pa.Table:
    if store.read_marker(asset, shard, restricted) is None:
        raise UpstreamNotReadyError(f"{asset} is not complete for shard {shard}; materialize it first")
    return store.read_table(asset, shard, restricted)


def write_shard(
    context: AssetExecutionContext,
    store: ShardStore,
    shard: str,
    *,
    code_version: str,
    models: dict[str, str],
    compute: Callable[[], tuple[pa.Table, dict[str, Any]]],
    restricted: bool = False,
    force: bool = False,
) -> "ShardOutcome":
    """Skip the shard if complete for these versions, else compute its table and publish it atomically."""
    asset = context.asset_key.to_user_string()
    if not force and store.is_complete(asset, shard, code_version, models, restricted):
        marker = store.read_marker(asset, shard, restricted) or {}
        return ShardOutcome(shard, True, marker, store.data_url(asset, shard, restricted))
    table, extra = compute()
    provenance = Provenance(asset, shard, code_version, context.run.run_id, models)
    marker = store.write_table(provenance, table, restricted=restricted, marker_extra=extra)
    return ShardOutcome(shard, False, marker, store.data_url(asset, shard, restricted))


@dataclass(frozen=True)
class ShardOutcome:
    shard: str
    skipped: bool
    marker: dict[str, Any] = field(default_factory=dict)
    path: str | None = None


def materialize_shards(
    context: AssetExecutionContext,
    process: Callable[[str], ShardOutcome],
    *,
    shard_errors: tuple[type[BaseException], ...],
    totals: Sequence[str] = ("rows", "errors"),
    single_shard_metadata: Sequence[str] = (),
    extra_metadata: dict[str, Any] | None = None,
) -> MaterializeResult:
    """Run ``process`` for each partition key of the run and turn the outcomes into one MaterializeResult.

    Exceptions of the types in ``shard_errors`` fail only their shard (reported at the end, naming the cause);
    anything else is a bug or an infrastructure fault and fails the run at once.
    """
    outcomes: list[ShardOutcome] = []
    failures: list[str] = []
    for key in context.partition_keys:
        try:
            outcome = process(key)
        except shard_errors as exc:
            context.log.error(f"shard {key} failed: {exc}")
            failures.append(f"shard {key}: {exc}")
            continue
        counts = ", ".join(f"{name} {outcome.marker.get(name)}" for name in totals)
        context.log.info(f"shard {key}: {counts}" + (" (already complete, skipped)" if outcome.skipped else ""))
        outcomes.append(outcome)
    if failures:
        raise Failure(
            description="; ".join(failures),
            metadata={"failed_shards": len(failures), "completed_shards": len(outcomes)},
        )

    metadata: dict[str, Any] = {
        "shards": len(outcomes),
        "skipped_complete": sum(o.skipped for o in outcomes),
        **{name: sum(o.marker.get(name) or 0 for o in outcomes) for name in totals},
        **(extra_metadata or {}),
    }
    if len(outcomes) != 1:
        return MaterializeResult(metadata=metadata)
    only = outcomes[0]
    if only.path:
        metadata["path"] = MetadataValue.path(only.path)
    for name in single_shard_metadata:
        value = only.marker.get(name)
        if value is not None:
            metadata[name] = MetadataValue.json(value) if isinstance(value, dict | list) else value
    return MaterializeResult(metadata=metadata, data_version=DataVersion(only.marker["data_sha256"][:16]))
