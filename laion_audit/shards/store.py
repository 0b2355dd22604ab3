"""One parquet file per (asset, shard), written atomically, with a completion marker and provenance.

Layout under the root (a local folder or any fsspec URI)::

    <root>/<asset>/<shard>.parquet            the rows
    <root>/<asset>/<shard>.complete.json      the completion marker (written last)
    <root>/restricted/<asset>/...             the same, for demographic labels (owner-only on local disk)

Why not a Dagster IO manager: a multi-shard run must be able to skip shards that an earlier, failed attempt
already finished, and aggregates read thousands of shard files directly. The marker is what makes a shard
"done": it records the recipe that produced the file (code version, model fingerprints, effective settings,
upstream data versions; see recipe.py) and its hash, so a re-run skips shards complete for the same recipe and
redoes the others. Row counts by status are counted from the rows as they are written, never passed in.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from laion_audit.ops.code_identity import code_identity
from laion_audit.shards.recipe import Recipe, output_data_version

PROVENANCE_FOOTER_KEY = b"laion_audit.provenance"
RESTRICTED_PREFIX = "restricted"
# Statuses that mean this asset failed on a row (as opposed to "no_image", "no_valid_person", "no_caption", which
# are answers) and the one that means an upstream asset had already failed on it.
ERROR_STATUS = "error"
UPSTREAM_ERROR_STATUS = "upstream_error"


@dataclass(frozen=True)
class Provenance:
    """Who made a shard file: stored in every row, in the parquet footer and in the marker."""

    recipe: Recipe
    shard: str
    run_id: str

    @property
    def asset(self) -> str:
        return self.recipe.asset

    @property
    def code_version(self) -> str:
        return self.recipe.code_version

    @property
    def models(self) -> Mapping[str, str]:
        return self.recipe.models

    def to_dict(self) -> dict[str, Any]:
        return {"asset": self.asset, "shard": self.shard, "run_id": self.run_id, "code_version": self.code_version,
                "models": dict(self.models), "recipe": self.recipe.parts(), "recipe_sha256": self.recipe.sha256,
                **code_identity()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)


class ShardWriter:
    """Appends record batches to a temporary parquet file; `ShardStore.writer` publishes it on success."""

    def __init__(self, parquet_writer: pq.ParquetWriter, schema: pa.Schema, provenance: Provenance):
        self._writer = parquet_writer
        self._schema = schema
        self._provenance = provenance
        self.rows = 0
        self.status_counts: Counter[str] = Counter()
        self.marker: dict[str, Any] = {}  # set once the file is published

    def write(self, table: pa.Table) -> None:
        n = table.num_rows
        if "status" in table.column_names:
            self.status_counts.update(table.column("status").to_pylist())
        table = table.append_column("code_version", pa.array([self._provenance.code_version] * n, pa.string()))
        table = table.append_column("run_id", pa.array([self._provenance.run_id] * n, pa.string()))
        self._writer.write_table(table.cast(self._schema))
        self.rows += n


class ShardStore:
    def __init__(self, root: str):
        self.root = root.rstrip("/")
        self.fs, self._root_path = fsspec.core.url_to_fs(self.root)

    # ------------------------------------------------------------------ paths
    def _dir(self, asset: str, restricted: bool) -> str:
        parts = [self._root_path] + ([RESTRICTED_PREFIX] if restricted else []) + [asset]
        return "/".join(parts)

    def data_path(self, asset: str, shard: str, restricted: bool = False) -> str:
        return f"{self._dir(asset, restricted)}/{shard}.parquet"

    def marker_path(self, asset: str, shard: str, restricted: bool = False) -> str:
        return f"{self._dir(asset, restricted)}/{shard}.complete.json"

    def data_url(self, asset: str, shard: str, restricted: bool = False) -> str:
        path = self.data_path(asset, shard, restricted)
        return path if self._is_local else self.fs.unstrip_protocol(path)

    @property
    def reports_dir(self) -> str:
        """Where aggregate reports go (the store's filesystem path, without protocol)."""
        return f"{self._root_path}/reports"

    @property
    def _is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    # ------------------------------------------------------------------ state
    def read_marker(self, asset: str, shard: str, restricted: bool = False) -> dict[str, Any] | None:
        path = self.marker_path(asset, shard, restricted)
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "r") as handle:
            return json.load(handle)

    def complete_marker(self, recipe: Recipe, shard: str, restricted: bool = False) -> dict[str, Any] | None:
        """The marker if the shard was finished for exactly this recipe (and its file is there), else None."""
        marker = self.read_marker(recipe.asset, shard, restricted)
        if marker is None or marker.get("recipe_sha256") != recipe.sha256:
            return None
        if not self.fs.exists(self.data_path(recipe.asset, shard, restricted)):
            return None
        return marker

    def complete_shards(self, asset: str, restricted: bool = False) -> dict[str, dict[str, Any]]:
        """Every shard of ``asset`` with a marker, for aggregates that read all finished shards."""
        directory = self._dir(asset, restricted)
        if not self.fs.exists(directory):
            return {}
        markers = {}
        for path in sorted(self.fs.glob(f"{directory}/*.complete.json")):
            shard = path.rsplit("/", 1)[-1].removesuffix(".complete.json")
            marker = self.read_marker(asset, shard, restricted)
            if marker is not None:
                markers[shard] = marker
        return markers

    def read_table(self, asset: str, shard: str, restricted: bool = False, columns: list[str] | None = None) -> pa.Table:
        with self.fs.open(self.data_path(asset, shard, restricted), "rb") as handle:
            return pq.read_table(handle, columns=columns)

    @staticmethod
    def read_provenance(path: str) -> dict[str, Any]:
        with fsspec.open(path, "rb") as handle:
            metadata = pq.ParquetFile(handle).schema_arrow.metadata or {}
        return json.loads(metadata[PROVENANCE_FOOTER_KEY])

    # ------------------------------------------------------------------ writing
    def _mkdir(self, directory: str, restricted: bool) -> None:
        self.fs.makedirs(directory, exist_ok=True)
        if restricted and self._is_local:
            restricted_root = f"{self._root_path}/{RESTRICTED_PREFIX}"
            for path in (restricted_root, directory):
                os.chmod(path, 0o700)

    @contextmanager
    def writer(
        self,
        provenance: Provenance,
        schema: pa.Schema,
        *,
        restricted: bool = False,
        marker_extra: Mapping[str, Any] | None = None,
    ) -> Iterator[ShardWriter]:
        """Write a shard file; it becomes visible, with its marker, only if the block finishes without error.

        ``marker_extra`` may be mutated inside the block (e.g. to add error counts known only at the end).
        """
        asset, shard = provenance.asset, provenance.shard
        directory = self._dir(asset, restricted)
        self._mkdir(directory, restricted)
        full_schema = schema.append(pa.field("code_version", pa.string(), nullable=False)).append(
            pa.field("run_id", pa.string(), nullable=False)
        )
        full_schema = full_schema.with_metadata({PROVENANCE_FOOTER_KEY: provenance.to_json().encode()})
        tmp_path = f"{directory}/.tmp-{shard}-{uuid.uuid4().hex}.parquet"
        try:
            with self.fs.open(tmp_path, "wb") as handle:
                parquet_writer = pq.ParquetWriter(handle, full_schema, compression="zstd")
                shard_writer = ShardWriter(parquet_writer, full_schema, provenance)
                try:
                    yield shard_writer
                finally:
                    parquet_writer.close()
            shard_writer.marker = self._publish(tmp_path, provenance, shard_writer.rows, restricted,
                                                dict(marker_extra or {}), shard_writer.status_counts)
        except BaseException:
            if self.fs.exists(tmp_path):
                self.fs.rm(tmp_path)
            raise

    def write_table(
        self,
        provenance: Provenance,
        table: pa.Table,
        *,
        restricted: bool = False,
        marker_extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        with self.writer(provenance, table.schema, restricted=restricted, marker_extra=marker_extra) as out:
            out.write(table)
        return out.marker

    def _publish(
        self, tmp_path: str, provenance: Provenance, rows: int, restricted: bool, extra: dict[str, Any],
        status_counts: Mapping[str, int],
    ) -> dict[str, Any]:
        asset, shard = provenance.asset, provenance.shard
        data_path = self.data_path(asset, shard, restricted)
        marker_path = self.marker_path(asset, shard, restricted)
        if self._is_local and restricted:
            os.chmod(tmp_path, 0o600)
        digest = self._sha256(tmp_path)
        recipe = provenance.recipe
        # The old marker goes first: a crash between the two renames must not pair new data with an old marker.
        if self.fs.exists(marker_path):
            self.fs.rm(marker_path)
        self.fs.mv(tmp_path, data_path)
        marker = {
            **extra,
            **provenance.to_dict(),
            "version_set": recipe.version_set,
            "rows": rows,
            "status_counts": dict(sorted(status_counts.items())),
            "errors": status_counts.get(ERROR_STATUS, 0),
            "upstream_errors": status_counts.get(UPSTREAM_ERROR_STATUS, 0),
            "data_sha256": digest,
            "data_version": output_data_version(recipe.sha256, digest),
            "completed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        tmp_marker = f"{marker_path}.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp_marker, "w") as handle:
            json.dump(marker, handle, indent=1, sort_keys=True)
        self.fs.mv(tmp_marker, marker_path)
        return marker

    def _sha256(self, path: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
