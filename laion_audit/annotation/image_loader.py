"""A shard's images decoded and preprocessed in torch DataLoader worker processes, batch by batch, in tar order.

The model steps are reader -> model -> writer, as in rom1504/clip-retrieval: JPEG decoding and resizing run in
worker processes while the model works on the previous batch (``prefetch_factor`` batches per worker queued),
and batches of tensors travel through shared memory, pinned when the model is on CUDA so the copy to the
device can overlap. ``workers=0`` does the same work in this process, one batch at a time.

Every worker reads the whole tar (cheap next to decoding for a local or cached file; a shard streamed from object
storage is fetched once per worker) and prepares only its own batches: batch ``b`` of
the wanted samples belongs to worker ``b % workers``. The DataLoader collects batches from its workers in
round-robin order, so batches come out in tar order, each the same consecutive samples whatever the number of
workers: results do not depend on ``workers``. Every wanted sample found in the tar is in exactly one batch:
prepared, failed (its error text) or missing (no image member); none is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from laion_audit.annotation.throughput import LoaderStats
from laion_audit.annotation.worker_processes import worker_context
from laion_audit.shards.images import iter_image_bytes
from laion_audit.shards.reader import stable_text
from laion_audit.shards.sources import ShardSource

Prepare = Callable[[bytes], tuple[Any, tuple[int, int]]]  # image bytes -> (model input, (width, height))


@dataclass
class ImageBatch:
    """One batch of consecutive wanted samples. ``values`` and ``sizes`` are aligned with ``ready``."""

    keys: list[str]  # every wanted sample of the batch, in tar order
    ready: list[str] = field(default_factory=list)
    values: Any = None  # one stacked tensor when the loader stacks, else a list
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height) of each upright image
    failed: dict[str, str] = field(default_factory=dict)  # key -> why it could not be decoded
    missing: list[str] = field(default_factory=list)  # keys whose sample has no image member

    def pin_memory(self) -> ImageBatch:
        """Called by the DataLoader's pinning thread when ``pin_memory`` is on."""
        if isinstance(self.values, torch.Tensor):
            self.values = self.values.pin_memory()
        return self


class ShardImages(IterableDataset):
    """Batches of one shard's wanted images; with worker processes, each prepares every n-th batch."""

    def __init__(self, source: ShardSource, keys: Iterable[str], prepare: Prepare, batch_size: int, *,
                 stack: bool = False):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.source, self.keys, self.prepare = source, list(keys), prepare
        self.batch_size, self.stack = batch_size, stack

    def __iter__(self) -> Iterator[ImageBatch]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        pending: list[tuple[str, bytes | None]] = []
        for index, (key, data) in enumerate(iter_image_bytes(self.source, self.keys)):
            if (index // self.batch_size) % workers != worker:
                continue
            pending.append((key, data))
            if len(pending) == self.batch_size:
                yield self._prepared(pending)
                pending = []
        if pending:
            yield self._prepared(pending)

    def _prepared(self, samples: list[tuple[str, bytes | None]]) -> ImageBatch:
        batch = ImageBatch(keys=[key for key, _ in samples])
        values = []
        for key, data in samples:
            if data is None:
                batch.missing.append(key)
                continue
            try:
                value, size = self.prepare(data)
            except Exception as exc:  # noqa: BLE001 - a bad image becomes its own error row, not a dead shard
                batch.failed[key] = f"decode failed: {type(exc).__name__}: {stable_text(exc)}"
                continue
            batch.ready.append(key)
            values.append(value)
            batch.sizes.append(size)
        batch.values = torch.stack(values) if self.stack and values else values
        return batch


def load_batches(
    source: ShardSource,
    keys: Iterable[str],
    prepare: Prepare,
    *,
    batch_size: int,
    workers: int,
    stack: bool = False,
    pin_memory: bool = False,
    prefetch_factor: int = 2,
    stats: LoaderStats | None = None,
) -> Iterator[ImageBatch]:
    """Yield the shard's wanted samples in batches, in tar order; ``stats`` gets the time spent waiting.

    ``prepare`` runs in the workers: a module-level function or a picklable object. Workers start from a clean
    forkserver (worker_processes.py), never by forking the run; they only decode and resize on the CPU.
    """
    if workers < 0:
        raise ValueError("workers must be 0 (decode in this process) or more")
    dataset = ShardImages(source, keys, prepare, batch_size, stack=stack)
    loader = DataLoader(
        dataset, batch_size=None, collate_fn=_as_is, num_workers=workers, pin_memory=pin_memory,
        prefetch_factor=prefetch_factor if workers else None, multiprocessing_context=worker_context(workers),
    )
    stats = stats if stats is not None else LoaderStats()
    started = time.perf_counter()
    batches = iter(loader)
    while True:
        t = time.perf_counter()
        batch = next(batches, None)
        stats.input_wait_s += time.perf_counter() - t
        if batch is None:
            break
        stats.batches += 1
        stats.images += len(batch.ready)
        yield batch
    stats.wall_s += time.perf_counter() - started


def _as_is(batch: ImageBatch) -> ImageBatch:
    return batch
