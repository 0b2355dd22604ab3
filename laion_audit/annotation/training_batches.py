"""Training examples streamed to the classifier in DataLoader worker processes, in a seeded batch order.

A paper-scale training set (hundreds of thousands of consensus crops) cannot sit in memory as PIL images. An
``ExampleSource`` only knows each example's label and group (its shard) and can ``load`` a set of examples on
demand: ``ShardCrops`` re-reads the shards' tars and cuts the crops (annotation/crops.py, the same decode the
detector saw); ``InMemoryImages`` wraps a list of images (tests, small imports).

The batch order is planned in the main process (``plan_batches``) and the workers only fill the batches:
batch ``b`` belongs to worker ``b % workers`` and the DataLoader collects batches round-robin, so the batches come
out in plan order whatever the number of workers, and training depends only on the seed. Each worker loads the
examples of its own batches one *window* at a time (a window is a set of groups, i.e. shards), decodes, crops and
preprocesses them, and keeps at most the windows its current batch spans.

Shuffling: with ``window_groups=None`` the whole split is one window and every epoch is a uniform permutation
(the paper's ``DataLoader(shuffle=True)``), at the price of each worker holding its share of the split's crops
during the epoch. With ``window_groups=n`` the group order is shuffled every epoch, cut into windows of ``n``
groups, and examples are permuted within a window (webdataset-style shard shuffling): memory is bounded by a
window, and the run's metadata says the shuffle was not global.

This module imports torch; classifier_training.py imports it inside its functions only (the Dagster code location
must not need torch to build its definitions).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from laion_audit.annotation.worker_processes import worker_context
from laion_audit.annotation.crops import PersonBox, crop, iter_person_images
from laion_audit.shards.sources import ShardSource


class TooFewToResampleError(ValueError):
    """The training split is too small for the recipe's resampling rule."""


class ExampleSource(Protocol):
    labels: list[int]

    def group(self, index: int) -> Hashable:
        """The unit examples are read in (a shard); windows are made of whole groups."""

    def load(self, indices: Sequence[int]) -> dict[int, Any]:
        """Every requested example's image (or anything ``preprocess`` accepts); a missing one is an error."""


@dataclass
class InMemoryImages:
    images: Sequence[Any]
    labels: list[int]

    def group(self, index: int) -> Hashable:
        return 0

    def load(self, indices: Sequence[int]) -> dict[int, Any]:
        return {i: self.images[i] for i in set(indices)}


class MissingCropError(RuntimeError):
    """A consensus crop could not be cut again (its image is gone from the shard): training stops, named."""


@dataclass
class ShardCrops:
    """Crops named by (shard, key, box_id) refs, cut from the shards' pixels when a worker needs them.

    ``boxes[i]`` is example ``i``'s box in ``refs[i][0]``; ``locate`` maps a shard key to its ShardSource (it is
    called in the worker processes, which receive it pickled: pass plain data, not a Dagster resource).
    """

    refs: list[tuple[str, str, int]]
    boxes: list[PersonBox]
    labels: list[int]
    locate: Callable[[str], ShardSource]

    def group(self, index: int) -> Hashable:
        return self.refs[index][0]

    def load(self, indices: Sequence[int]) -> dict[int, Any]:
        by_shard: dict[str, dict[tuple[str, int], list[int]]] = defaultdict(lambda: defaultdict(list))
        for i in set(indices):
            by_shard[self.refs[i][0]][(self.boxes[i].key, self.boxes[i].box_id)].append(i)
        out: dict[int, Any] = {}
        for shard in sorted(by_shard):
            wanted = by_shard[shard]
            boxes = [self.boxes[members[0]] for members in wanted.values()]
            for box, image in iter_person_images(self.locate(shard), boxes):
                piece = crop(image, box)
                for i in wanted[(box.key, box.box_id)]:
                    out[i] = piece
        missing = sorted(set(indices) - set(out))
        if missing:
            shard, key, box_id = self.refs[missing[0]]
            raise MissingCropError(f"{len(missing)} training crops could not be cut again, e.g. shard {shard} "
                                   f"sample {key} box {box_id}: its image is not in the shard any more")
        return out


def resample_to_fraction_of_largest(labels: Sequence[int], indices: Sequence[int], divisor: int,
                                    seed: int) -> list[int]:
    """The paper's race rebalancing (train_race_classifier.py:44-55): every class to ⌊max class count / divisor⌋.

    Of ``indices`` (the training split), each present class is drawn to exactly ``target`` examples: with
    replacement when it has fewer than ``target`` (oversampling), without replacement otherwise (a class at or
    above the target is undersampled to distinct examples). Classes absent from the split stay absent. Seeded;
    the result is sorted by class, then draw order (the training loop shuffles it every epoch).
    """
    if divisor < 1:
        raise ValueError(f"divisor must be >= 1, got {divisor}")
    by_class: dict[int, list[int]] = defaultdict(list)
    for i in indices:
        by_class[int(labels[i])].append(int(i))
    if not by_class:
        return []
    target = max(len(members) for members in by_class.values()) // divisor
    if target < 1:
        raise TooFewToResampleError(f"the largest class of the training split has fewer than {divisor} examples: "
                                    "nothing to resample to")
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for label in sorted(by_class):
        members = by_class[label]
        drawn = rng.choice(len(members), size=target, replace=len(members) < target)
        out.extend(members[j] for j in drawn)
    return out


@dataclass(frozen=True)
class BatchPlan:
    batches: list[list[int]]  # example indices per batch, in training order
    windows: list[list[int]]  # window id of every example of every batch (aligned with batches)
    global_shuffle: bool


def plan_batches(source: ExampleSource, indices: Sequence[int], batch_size: int, *, seed: int | None,
                 window_groups: int | None) -> BatchPlan:
    """Cut ``indices`` into batches; ``seed=None`` keeps the given order (evaluation), else shuffles as above."""
    indices = [int(i) for i in indices]
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i in indices:
        groups[source.group(i)].append(i)
    group_order = sorted(groups, key=str)
    rng = np.random.default_rng(seed) if seed is not None else None
    if rng is not None:
        group_order = [group_order[j] for j in rng.permutation(len(group_order))]
    per_window = len(group_order) if window_groups is None else window_groups
    ordered: list[int] = []
    window_of: list[int] = []
    for w, start in enumerate(range(0, max(len(group_order), 1), max(per_window, 1))):
        members = [i for g in group_order[start:start + max(per_window, 1)] for i in groups[g]]
        if rng is not None:
            members = [members[j] for j in rng.permutation(len(members))]
        ordered.extend(members)
        window_of.extend([w] * len(members))
    batches = [ordered[s:s + batch_size] for s in range(0, len(ordered), batch_size)]
    windows = [window_of[s:s + batch_size] for s in range(0, len(ordered), batch_size)]
    return BatchPlan(batches, windows, global_shuffle=window_groups is None or window_groups >= len(group_order))


class PlannedBatches(IterableDataset):
    """(images tensor, labels tensor) per batch of a BatchPlan; see the module docstring."""

    def __init__(self, source: ExampleSource, plan: BatchPlan, preprocess: Callable[[Any], Any]):
        self.source, self.plan, self.preprocess = source, plan, preprocess

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        mine = range(worker, len(self.plan.batches), workers)
        wanted: dict[int, list[int]] = defaultdict(list)
        for b in mine:
            for i, w in zip(self.plan.batches[b], self.plan.windows[b], strict=True):
                wanted[w].append(i)
        loaded: dict[int, dict[int, Any]] = {}
        for b in mine:
            batch, windows = self.plan.batches[b], set(self.plan.windows[b])
            for w in sorted(windows - set(loaded)):
                loaded[w] = self.source.load(wanted.pop(w))
            for w in [w for w in loaded if w < min(windows)]:
                del loaded[w]
            images = [loaded[w][i] for i, w in zip(batch, self.plan.windows[b], strict=True)]
            x = torch.stack([self.preprocess(image) for image in images])
            y = torch.tensor([self.source.labels[i] for i in batch], dtype=torch.long)
            yield x, y


def batch_loader(source: ExampleSource, plan: BatchPlan, preprocess: Callable[[Any], Any], *, workers: int,
                 pin_memory: bool = False):
    """A DataLoader over the plan; ``workers`` processes decode and preprocess (0: in this process)."""
    return DataLoader(PlannedBatches(source, plan, preprocess), batch_size=None, num_workers=workers,
                      pin_memory=pin_memory, prefetch_factor=2 if workers else None,
                      multiprocessing_context=worker_context(workers))


def class_counts(labels: Sequence[int], indices: Sequence[int]) -> Counter:
    return Counter(int(labels[i]) for i in indices)
