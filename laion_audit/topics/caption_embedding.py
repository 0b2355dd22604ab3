"""One shard's person captions -> sentence embeddings, keyed (shard, key, box_id), and the stream of embeddings the
SAE trainer and the topic analysis read back from the store.

Every caption row gets a row: an embedding when the caption is ok, else the caption's own status and error carried
over (``upstream_error``) so each sample key stays accounted for. Embeddings of person captions are restricted like
the captions: a caption describes how a person looks, and a sentence embedding can be inverted back to much of its
text, so it is no less identifying than the caption itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laion_audit.shards.store import ShardStore

CAPTION_EMBEDDINGS = "caption_embeddings"

CAPTION_EMBEDDINGS_SCHEMA = pa.schema([
    pa.field("shard", pa.string(), nullable=False),
    pa.field("key", pa.string(), nullable=False),
    pa.field("box_id", pa.int32()),
    pa.field("embedding", pa.list_(pa.float32())),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("model_name", pa.string(), nullable=False),
    pa.field("model_fingerprint", pa.string(), nullable=False),
    pa.field("random_weights", pa.bool_(), nullable=False),
])


def embed_shard(captions: pa.Table, embedder: Any, *, batch_size: int) -> pa.Table:
    """Embed the ok captions of one shard in batches of ``batch_size``; other rows keep their reason."""
    rows = captions.select(["shard", "key", "box_id", "caption", "status", "error"]).to_pylist()
    ok = [i for i, row in enumerate(rows) if row["status"] == "ok" and row["box_id"] is not None
          and isinstance(row["caption"], str)]
    vectors = embedder.embed([rows[i]["caption"] for i in ok], batch_size)
    by_row = dict(zip(ok, vectors, strict=True))
    out = []
    for i, row in enumerate(rows):
        vector = by_row.get(i)
        if vector is not None:
            status, error = "ok", None
        elif row["status"] == "ok":
            status, error = "error", "caption missing for an ok row"
        else:
            status, error = "upstream_error", row["error"] or row["status"]
        out.append({"shard": row["shard"], "key": row["key"], "box_id": row["box_id"],
                    "embedding": None if vector is None else vector.tolist(), "status": status, "error": error,
                    "model_name": embedder.name, "model_fingerprint": embedder.fingerprint,
                    "random_weights": embedder.random_weights})
    return pa.Table.from_pylist(out, schema=CAPTION_EMBEDDINGS_SCHEMA)


def ok_embeddings(table: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """The ok rows' keys and their embeddings as a float32 (n, dim) array."""
    ok = table.filter(pc.equal(table["status"], "ok"))
    column = ok["embedding"].combine_chunks()
    if len(ok) == 0:
        return ok.select(["shard", "key", "box_id"]), np.zeros((0, 0), dtype=np.float32)
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return ok.select(["shard", "key", "box_id"]), flat.reshape(len(ok), -1)


class EmbeddingStore:
    """The ok embeddings of the shards ``markers`` names, read one shard at a time. Shards read are kept in memory
    up to ``cache_bytes`` (default 256 MiB) so that small stores are not re-read for every batch of an endless
    stream; beyond it shards are read again on each pass. Memory is bounded by the cache plus one shard and one
    batch, whatever the number of shards."""

    def __init__(self, store: ShardStore, markers: Mapping[str, Mapping[str, Any]], cache_bytes: int = 256 << 20):
        self.store, self.markers = store, dict(markers)
        self.shards = sorted(self.markers)
        self.cache_bytes = cache_bytes
        self._cache: dict[str, tuple[pa.Table, np.ndarray]] = {}
        self._cached_bytes = 0

    def shard(self, shard: str) -> tuple[pa.Table, np.ndarray]:
        if shard in self._cache:
            return self._cache[shard]
        table = self.store.read_marked(CAPTION_EMBEDDINGS, shard, self.markers[shard], restricted=True,
                                       columns=["shard", "key", "box_id", "embedding", "status"])
        keys, vectors = ok_embeddings(table)
        size = vectors.nbytes + keys.nbytes
        if self._cached_bytes + size <= self.cache_bytes:
            self._cache[shard] = (keys, vectors)
            self._cached_bytes += size
        return keys, vectors

    def passes(self) -> Iterator[tuple[str, pa.Table, np.ndarray]]:
        """One pass: (shard, keys, embeddings) per shard with at least one embedding."""
        for shard in self.shards:
            keys, vectors = self.shard(shard)
            if len(vectors):
                yield shard, keys, vectors

    def dim(self) -> int:
        for _, _, vectors in self.passes():
            return vectors.shape[1]
        raise NoEmbeddingsError("no ok caption embeddings in the store: materialize caption_embeddings first")

    def batches(self, batch_size: int, seed: int) -> Iterator[np.ndarray]:
        """Endless batches, shard after shard (as the paper loops over its embedding files), each shard's rows in a
        seeded order; a batch may span shards. Raises NoEmbeddingsError when there is nothing to read."""
        rng = np.random.default_rng(seed)
        pending: list[np.ndarray] = []
        held = 0
        while True:
            found = False
            for _, _, vectors in self.passes():
                found = True
                vectors = vectors[rng.permutation(len(vectors))]
                while len(vectors):
                    take = vectors[: batch_size - held]
                    vectors = vectors[len(take):]
                    pending.append(take)
                    held += len(take)
                    if held == batch_size:
                        yield np.concatenate(pending)
                        pending, held = [], 0
            if not found:
                raise NoEmbeddingsError("no ok caption embeddings in the store: materialize caption_embeddings first")


class NoEmbeddingsError(ValueError):
    """There are no caption embeddings to train or count on."""
