"""Per-model outputs (one file per CLIP model, not per shard): ``<store>/<asset>/<role>.parquet`` and the record
``<role>.json`` written after it, each atomically (temporary name, then rename), so a reader never sees a table
without its record or a record naming another table.

The record holds the recipe (code version, model fingerprint, ratings dataset and prompt hashes, settings) and its
sha256: a re-run with the same recipe skips the model, and a dataset-level table can refuse records made from
another ratings dataset or prompt table.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from laion_audit.shards.recipe import canonical_json, sha256_text

_ROLE = re.compile(r"[a-z0-9_]+")


class ModelOutputs:
    def __init__(self, store_root: str, asset: str):
        self.fs, root = fsspec.core.url_to_fs(store_root.rstrip("/"))
        self.directory = f"{root}/{asset}"

    def _path(self, role: str, suffix: str) -> str:
        if not _ROLE.fullmatch(role):
            raise ValueError(f"invalid model role {role!r}")
        return f"{self.directory}/{role}.{suffix}"

    def _put(self, path: str, data: bytes) -> None:
        tmp = f"{self.directory}/.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp, "wb") as handle:
            handle.write(data)
        self.fs.mv(tmp, path)

    def record(self, role: str) -> dict[str, Any] | None:
        try:
            with self.fs.open(self._path(role, "json"), "r") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None

    def complete(self, role: str, recipe: Mapping[str, Any]) -> dict[str, Any] | None:
        """The record if the model was computed for exactly ``recipe`` and its table is there."""
        record = self.record(role)
        if record is None or record.get("recipe_sha256") != sha256_text(canonical_json(recipe)):
            return None
        return record if self.fs.exists(self._path(role, "parquet")) else None

    def write(self, role: str, table: pa.Table, recipe: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
        self.fs.makedirs(self.directory, exist_ok=True)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        data = buffer.getvalue()
        data_sha256 = hashlib.sha256(data).hexdigest()
        recipe_sha256 = sha256_text(canonical_json(recipe))
        record = {**extra, "recipe": dict(recipe), "recipe_sha256": recipe_sha256, "data_sha256": data_sha256,
                  "rows": table.num_rows, "data_version": sha256_text(f"{recipe_sha256}:{data_sha256}")[:24]}
        self._put(self._path(role, "parquet"), data)
        self._put(self._path(role, "json"), json.dumps(record, indent=1, sort_keys=True, default=str).encode())
        return record

    def read(self, role: str, record: Mapping[str, Any]) -> pa.Table:
        """The table ``record`` describes; a table replaced since (another sha256) is an error, not a mix."""
        with self.fs.open(self._path(role, "parquet"), "rb") as handle:
            data = handle.read()
        if hashlib.sha256(data).hexdigest() != record["data_sha256"]:
            raise RuntimeError(f"{self.directory}/{role}.parquet changed while it was read; run again")
        return pq.read_table(io.BytesIO(data))
