"""Building one shard's `samples` file: read the shard, write the rows, count what went wrong.

This is the whole of the `samples` asset minus Dagster, so it can be tested and benchmarked on its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow.compute as pc

from laion_audit.shards.samples_schema import SAMPLES_SCHEMA, STATUS_ERROR
from laion_audit.shards.reader import ReaderOptions, ShardReadReport, read_samples
from laion_audit.shards.sources import ShardSource
from laion_audit.shards.store import Provenance, ShardStore

SAMPLES_ASSET = "samples"


@dataclass(frozen=True)
class IngestResult:
    shard: str
    skipped: bool
    marker: dict[str, Any]


def ingest_shard(
    source: ShardSource,
    store: ShardStore,
    *,
    code_version: str,
    run_id: str,
    options: ReaderOptions | None = None,
    force: bool = False,
) -> IngestResult:
    """Write ``samples/<shard>.parquet`` unless it is already complete for this code version."""
    if not force and store.is_complete(SAMPLES_ASSET, source.key, code_version):
        return IngestResult(source.key, skipped=True, marker=store.read_marker(SAMPLES_ASSET, source.key) or {})

    provenance = Provenance(asset=SAMPLES_ASSET, shard=source.key, code_version=code_version, run_id=run_id)
    report = ShardReadReport()
    error_kinds: Counter[str] = Counter()
    stats: dict[str, Any] = {"source_format": source.format, "source_url": source.url}
    n_errors = 0
    n_images = 0
    with store.writer(provenance, SAMPLES_SCHEMA, marker_extra=stats) as out:
        for table in read_samples(source, options, report):
            out.write(table)
            n_errors += pc.sum(pc.equal(table["status"], STATUS_ERROR)).as_py() or 0
            n_images += pc.sum(table["has_image"]).as_py() or 0
            for kinds in table["error_kind"].drop_null().to_pylist():
                error_kinds.update(kinds.split(","))
        stats.update(
            errors=n_errors,
            images_ok=n_images,
            error_kinds=dict(sorted(error_kinds.items())),
            truncated=report.truncated,
        )
    return IngestResult(source.key, skipped=False, marker=out.marker)
