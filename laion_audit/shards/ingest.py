"""Building one shard's `samples` file: read the shard, write the rows, count what went wrong.

This is the whole of the `samples` asset minus Dagster, so it can be tested and benchmarked on its own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow.compute as pc

from laion_audit.shards.reader import ReaderOptions, ShardReadReport, read_samples
from laion_audit.shards.lineage import SHARD_FILE, code_version
from laion_audit.shards.recipe import Recipe
from laion_audit.shards.samples_schema import SAMPLES_SCHEMA
from laion_audit.shards.sources import ShardSource
from laion_audit.shards.store import Provenance, ShardStore

SAMPLES_ASSET = "samples"


def samples_recipe(source: ShardSource, options: ReaderOptions) -> Recipe:
    """The shard file's version is the upstream: a file replaced (or still growing) means another recipe."""
    return Recipe(
        SAMPLES_ASSET,
        code_version(SAMPLES_ASSET),
        settings={"max_image_pixels": options.max_image_pixels, "verify_images": options.verify_images},
        upstream={SHARD_FILE: source.version or "unknown"},
    )


@dataclass(frozen=True)
class IngestResult:
    shard: str
    skipped: bool
    marker: dict[str, Any]


def ingest_shard(
    source: ShardSource,
    store: ShardStore,
    *,
    run_id: str,
    options: ReaderOptions | None = None,
    force: bool = False,
) -> IngestResult:
    """Publish the shard's ``samples`` file (and marker) unless it is already complete for this recipe."""
    options = options or ReaderOptions()
    recipe = samples_recipe(source, options)
    if not force and (marker := store.complete_marker(recipe, source.key)) is not None:
        return IngestResult(source.key, skipped=True, marker=marker)

    provenance = Provenance(recipe, source.key, run_id)
    report = ShardReadReport()
    error_kinds: Counter[str] = Counter()
    stats: dict[str, Any] = {"source_format": source.format, "source_url": source.url}
    n_images = 0
    with store.writer(provenance, SAMPLES_SCHEMA, marker_extra=stats) as out:
        for table in read_samples(source, options, report):
            out.write(table)
            n_images += pc.sum(table["has_image"]).as_py() or 0
            for kinds in table["error_kind"].drop_null().to_pylist():
                error_kinds.update(kinds.split(","))
        # Expected vs read counts (img2dataset sidecars), whether the tar ended early, skipped members.
        stats.update(
            images_ok=n_images,
            error_kinds=dict(sorted(error_kinds.items())),
            **report.marker_fields(),
        )
    return IngestResult(source.key, skipped=False, marker=out.marker)
