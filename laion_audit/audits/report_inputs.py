"""What an aggregate read: the manifest of shard files and versions behind a published table.

Dagster stops tracking staleness past 100 upstream partitions, so each aggregate records for itself which shard
files (by content hash), code versions and model fingerprints it was computed from, publishes that manifest
next to its report, and uses the manifest's hash as its data version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from laion_audit.shards.store import ShardStore


def input_manifest(store: ShardStore, inputs: Sequence[tuple[str, bool]]) -> dict[str, Any]:
    """{asset: {shard: {data_sha256, code_version, models}}} for every complete shard of each input asset."""
    manifest: dict[str, Any] = {}
    for asset, restricted in inputs:
        manifest[asset] = {
            shard: {k: marker.get(k) for k in ("data_sha256", "code_version", "models")}
            for shard, marker in store.complete_shards(asset, restricted).items()
        }
    return manifest


def manifest_hash(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def read_all(store: ShardStore, asset: str, shards: Sequence[str], columns: list[str] | None = None,
             restricted: bool = False) -> pa.Table | None:
    tables = [store.read_table(asset, shard, restricted, columns=columns) for shard in shards]
    # Optional columns (e.g. hate_prob) may exist in some shards only.
    return pa.concat_tables(tables, promote_options="default") if tables else None


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
