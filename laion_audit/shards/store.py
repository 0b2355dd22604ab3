"""One parquet file per (asset, shard), published atomically, with a completion marker and provenance.

Layout under the root (a local folder or any fsspec URI)::

    <root>/<asset>/<shard>.<sha16>.parquet    the rows; <sha16> = the first 16 hex digits of the file's sha256
    <root>/<asset>/<shard>.complete.json      the completion marker: names its data file ("data_file")
    <root>/restricted/<asset>/...             the same, for demographic labels (owner-only on local disk)

Why not a Dagster IO manager: a multi-shard run must be able to skip shards that an earlier, failed attempt
already finished, and aggregates read thousands of shard files directly. The marker is what makes a shard
"done": it records the recipe that produced the file (code version, model fingerprints, effective settings,
upstream data versions; see recipe.py) and its hash, so a re-run skips shards complete for the same recipe and
redoes the others. Row counts by status are counted from the rows as they are written, never passed in.

Publishing is one atomic step, so two writers of one (asset, shard) (two runs of the same partition) cannot
leave a marker describing the other's file. Data files are content-addressed and never rewritten with other
bytes: each writer renames its finished file to ``<shard>.<sha16>.parquet`` (the same content gets the same
name), then replaces the marker that names it in one atomic operation (``os.replace`` on local disk, a single
PUT on object stores, where a PUT is atomic; write-then-rename elsewhere). Whoever replaces the marker last
wins, and the marker always describes the file it names. Readers go through the marker (``read_table``,
``data_path``). Data files no marker names are removed after a later publish once they are older than
``STALE_DATA_GRACE_S``: a younger one may belong to a writer that has not replaced the marker yet.

Markers written before ``data_file`` existed name ``<shard>.parquet``, the old layout, which still reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
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
from laion_audit.shards.sources import validate_shard_key

PROVENANCE_FOOTER_KEY = b"laion_audit.provenance"
RESTRICTED_PREFIX = "restricted"
# Statuses that mean this asset failed on a row (as opposed to "no_image", "no_valid_person", "no_caption", which
# are answers) and the one that means an upstream asset had already failed on it.
ERROR_STATUS = "error"
UPSTREAM_ERROR_STATUS = "upstream_error"
# An unnamed data file younger than this (relative to the marker that replaced it, both timed by the storage)
# may be a concurrent writer's, renamed but not yet named by its marker: it is left for a later publish.
STALE_DATA_GRACE_S = 600.0
# Filesystems on which writing one small object is a single atomic PUT (never visible half-written).
ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})
DATA_HASH_CHARS = 16
# Object stores polars reads natively (object_store crate); anything else is read through fsspec.
POLARS_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
MARKER_READERS = 16

logger = logging.getLogger(__name__)


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

    def data_path(self, asset: str, shard: str, restricted: bool = False,
                  marker: Mapping[str, Any] | None = None) -> str:
        """The data file that ``marker`` (by default the shard's current marker) names.

        Without a marker, the old layout's ``<shard>.parquet``. Pass the marker you act on (e.g. the one
        ``write_table`` returned) to get its file even if another writer has published since.
        """
        if marker is None:
            marker = self.read_marker(asset, shard, restricted)
        return f"{self._dir(asset, restricted)}/{self._data_file(shard, marker)}"

    def marker_path(self, asset: str, shard: str, restricted: bool = False) -> str:
        """Every read and publish goes through here, so a shard key is checked before it reaches a path."""
        validate_shard_key(shard)
        return f"{self._dir(asset, restricted)}/{shard}.complete.json"

    def data_url(self, asset: str, shard: str, restricted: bool = False,
                 marker: Mapping[str, Any] | None = None) -> str:
        path = self.data_path(asset, shard, restricted, marker)
        return path if self._is_local else self.fs.unstrip_protocol(path)

    @staticmethod
    def data_file_name(shard: str, data_sha256: str) -> str:
        """The content-addressed name of a shard's data file."""
        return f"{shard}.{data_sha256[:DATA_HASH_CHARS]}.parquet"

    @staticmethod
    def _data_file(shard: str, marker: Mapping[str, Any] | None) -> str:
        name = (marker or {}).get("data_file") or f"{shard}.parquet"
        if "/" in name or name in (".", ".."):
            raise ValueError(f"marker of shard {shard} names an invalid data file: {name!r}")
        return name

    @property
    def reports_dir(self) -> str:
        """Where aggregate reports go (the store's filesystem path, without protocol)."""
        return f"{self._root_path}/reports"

    @property
    def _is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    @property
    def _atomic_put(self) -> bool:
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple | list) else (self.fs.protocol,)
        return not self._is_local and bool(ATOMIC_PUT_PROTOCOLS.intersection(protocols))

    # ------------------------------------------------------------------ state
    def read_marker(self, asset: str, shard: str, restricted: bool = False) -> dict[str, Any] | None:
        # A marker is only ever replaced whole, never removed, so no exists() check is needed (or wanted: a
        # check-then-open pair is the kind of race this store avoids).
        try:
            with self.fs.open(self.marker_path(asset, shard, restricted), "r") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None

    def complete_marker(self, recipe: Recipe, shard: str, restricted: bool = False) -> dict[str, Any] | None:
        """The marker if the shard was finished for exactly this recipe (and its file is there), else None."""
        marker = self.read_marker(recipe.asset, shard, restricted)
        if marker is None or marker.get("recipe_sha256") != recipe.sha256:
            return None
        if not self.fs.exists(self.data_path(recipe.asset, shard, restricted, marker)):
            return None
        return marker

    def complete_shards(self, asset: str, restricted: bool = False) -> dict[str, dict[str, Any]]:
        """Every shard of ``asset`` with a marker, for aggregates that read all finished shards.

        Markers are read on a thread pool: on an object store each read is a round trip, and a dataset table
        over 41,408 shards would otherwise spend its time waiting on them one by one.
        """
        directory = self._dir(asset, restricted)
        if not self.fs.exists(directory):
            return {}
        shards = [path.rsplit("/", 1)[-1].removesuffix(".complete.json")
                  for path in sorted(self.fs.glob(f"{directory}/*.complete.json"))]
        with ThreadPoolExecutor(max_workers=MARKER_READERS) as pool:
            markers = pool.map(lambda shard: self.read_marker(asset, shard, restricted), shards)
            return {shard: marker for shard, marker in zip(shards, markers) if marker is not None}

    @property
    def polars_can_scan(self) -> bool:
        """Whether polars can read this store's files by URL itself (local disk or a cloud object store)."""
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple | list) else (self.fs.protocol,)
        return self._is_local or bool(POLARS_PROTOCOLS.intersection(protocols))

    def read_marked(self, asset: str, shard: str, marker: Mapping[str, Any], restricted: bool = False,
                    columns: list[str] | None = None) -> pa.Table:
        """The table of the file ``marker`` names (the marker an aggregate's manifest recorded)."""
        with self.fs.open(self.data_path(asset, shard, restricted, marker), "rb") as handle:
            return pq.read_table(handle, columns=columns)

    def read_table(
        self, asset: str, shard: str, restricted: bool = False, columns: list[str] | None = None
    ) -> pa.Table:
        """The table of the shard's current marker (or of ``<shard>.parquet`` when it has no marker)."""
        return self.read_published(asset, shard, restricted, columns)[1]

    def read_published(
        self, asset: str, shard: str, restricted: bool = False, columns: list[str] | None = None
    ) -> tuple[dict[str, Any] | None, pa.Table]:
        """The marker and the table of the file it names: a consistent pair even while writers publish."""
        for attempt in range(3):
            marker = self.read_marker(asset, shard, restricted)
            try:
                with self.fs.open(self.data_path(asset, shard, restricted, marker), "rb") as handle:
                    return marker, pq.read_table(handle, columns=columns)
            except FileNotFoundError:
                # Only a file that a newer marker replaced can go away; read the newer one.
                if attempt == 2 or self.read_marker(asset, shard, restricted) == marker:
                    raise
        raise AssertionError("unreachable")

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
        asset, shard = provenance.asset, validate_shard_key(provenance.shard)
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
        """Name the finished file by its content, then point the marker at it in one atomic replace."""
        asset, shard = provenance.asset, provenance.shard
        directory = self._dir(asset, restricted)
        if self._is_local and restricted:
            os.chmod(tmp_path, 0o600)
        digest = self._sha256(tmp_path)
        data_file = self.data_file_name(shard, digest)
        data_path = f"{directory}/{data_file}"
        # The same bytes get the same name, so replacing an existing file changes nothing a reader can see.
        if self._is_local:
            os.utime(tmp_path)  # its age starts now: unnamed files are only removed once old (see cleanup)
            os.replace(tmp_path, data_path)
        else:
            self.fs.mv(tmp_path, data_path)
        recipe = provenance.recipe
        marker = {
            **extra,
            **provenance.to_dict(),
            "version_set": recipe.version_set,
            "rows": rows,
            "status_counts": dict(sorted(status_counts.items())),
            "errors": status_counts.get(ERROR_STATUS, 0),
            "upstream_errors": status_counts.get(UPSTREAM_ERROR_STATUS, 0),
            "data_file": data_file,
            "data_sha256": digest,
            "data_version": output_data_version(recipe.sha256, digest),
            "completed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._replace_marker(self.marker_path(asset, shard, restricted), marker, restricted)
        self._remove_unnamed_data(asset, shard, restricted)
        return marker

    def _replace_marker(self, marker_path: str, marker: Mapping[str, Any], restricted: bool) -> None:
        """Replace the marker in one atomic step: readers see the old marker or the new one, never neither."""
        payload = json.dumps(marker, indent=1, sort_keys=True).encode()
        if self._atomic_put:
            self.fs.pipe_file(marker_path, payload)
            return
        tmp_marker = f"{marker_path}.tmp-{uuid.uuid4().hex}"
        try:
            with self.fs.open(tmp_marker, "wb") as handle:
                handle.write(payload)
            if self._is_local:
                if restricted:
                    os.chmod(tmp_marker, 0o600)
                os.replace(tmp_marker, marker_path)
            else:
                self.fs.mv(tmp_marker, marker_path)
        except BaseException:
            if self.fs.exists(tmp_marker):
                self.fs.rm(tmp_marker)
            raise

    def _remove_unnamed_data(self, asset: str, shard: str, restricted: bool) -> None:
        """Best effort: remove this shard's data files that the marker does not name and that are old.

        Never the file the current marker names (the marker is re-read just before each removal), and never
        a file younger than ``STALE_DATA_GRACE_S``: a concurrent writer may have renamed it and not yet
        replaced the marker. When in doubt the file stays; a stray file is harmless, a removed live one not.
        """
        directory = self._dir(asset, restricted)
        marker_path = self.marker_path(asset, shard, restricted)
        pattern = re.compile(rf"{re.escape(shard)}(\.[0-9a-f]{{{DATA_HASH_CHARS}}})?\.parquet")
        try:
            reference = self.fs.modified(marker_path)
            candidates = [path for path in self._shard_files(directory, shard)
                          if path.rsplit("/", 1)[0] == directory and pattern.fullmatch(path.rsplit("/", 1)[-1])]
            for path in candidates:
                current = self.read_marker(asset, shard, restricted)
                if current is None or self._data_file(shard, current) == path.rsplit("/", 1)[-1]:
                    continue
                age = (reference - self.fs.modified(path)).total_seconds()
                if age > STALE_DATA_GRACE_S:
                    self.fs.rm(path)
        except Exception as error:  # noqa: BLE001 - cleanup must never fail a publish
            logger.debug("left unnamed data files of %s/%s: %s", directory, shard, error)

    def leftover_temp_files(self, older_than_s: float = 24 * 3600.0) -> list[tuple[str, float]]:
        """(path, age in seconds) of writers' temporary files older than ``older_than_s``.

        A run killed mid-write leaves its temporary file (never a published one). A live writer's temporary file
        is minutes old at most, so an age threshold tells the two apart without any coordination.
        """
        now = datetime.now(UTC)
        leftovers = []
        if not self.fs.exists(self._root_path):
            return leftovers
        for path in self.fs.find(self._root_path):
            name = path.rsplit("/", 1)[-1]
            if not (name.startswith(".tmp-") or ".tmp-" in name or name.endswith(".tmp")):
                continue
            age = (now - self.fs.modified(path).astimezone(UTC)).total_seconds()
            if age > older_than_s:
                leftovers.append((self._strip(path), age))
        return sorted(leftovers)

    def remove_leftover_temp_files(self, older_than_s: float = 24 * 3600.0) -> list[str]:
        removed = []
        for path, _ in self.leftover_temp_files(older_than_s):
            self.fs.rm(path)
            removed.append(path)
        return removed

    def _shard_files(self, directory: str, shard: str) -> list[str]:
        """Paths under ``directory`` whose names start with ``<shard>.`` (listed by prefix where possible)."""
        if self._is_local:
            return [f"{directory}/{name}" for name in os.listdir(directory) if name.startswith(f"{shard}.")]
        try:
            found = self.fs.find(directory, prefix=f"{shard}.")
        except TypeError:
            found = self.fs.ls(directory, detail=False)
        return [self._strip(path) for path in found if self._strip(path).rsplit("/", 1)[-1].startswith(f"{shard}.")]

    def output_dir(self, asset: str, restricted: bool = False) -> str:
        """The folder of an output that is not a shard file (per-model results), created with the same owner-only
        permissions as restricted shard folders."""
        directory = self._dir(asset, restricted)
        self._mkdir(directory, restricted)
        return directory

    def put_bytes(self, path: str, data: bytes, restricted: bool = False) -> None:
        """Write ``data`` to ``path`` atomically (temporary name, then rename); owner-only when restricted."""
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp, "wb") as handle:
            handle.write(data)
        if restricted and self._is_local:
            os.chmod(tmp, 0o600)
        if self._is_local:
            os.replace(tmp, path)
        else:
            self.fs.mv(tmp, path)

    def _strip(self, path: str) -> str:
        return self.fs._strip_protocol(path).rstrip("/")

    def _sha256(self, path: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
