"""Dataset composition for the report: samples, errors by kind, persons, valid persons, and the perceived gender
and race distributions of labelled persons, all read from what the shards' completion markers name.

Counts of samples and persons are not demographic and are published as they are. Label distributions count
people per perceived group: cells below k are hidden, and so is a second cell of the distribution when the
total (valid persons, published) would give a single hidden cell away.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from laion_audit.shards.store import ShardStore
from laion_audit.stats.group_statistics import suppress_matrix

LABEL_ASSETS = {"gender": "gender_labels", "race": "race_labels"}


@dataclass
class Composition:
    shards: list[str] = field(default_factory=list)
    samples: int = 0
    sample_errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    persons: int = 0
    valid_persons: int = 0
    box_shards: int = 0
    # axis -> [(label, count or None when suppressed)]
    labels: dict[str, list[tuple[str, int | None]]] = field(default_factory=dict)
    labelled_shards: dict[str, int] = field(default_factory=dict)
    run_ids: set[str] = field(default_factory=set)


def _add(counter: dict[str, int], values: dict[str, Any] | None) -> None:
    for key, value in (values or {}).items():
        counter[key] = counter.get(key, 0) + int(value or 0)


def published_distribution(counts: dict[str, int], k_min: int) -> list[tuple[str, int | None]]:
    """(label, count) in descending order, counts below k and their complement hidden (None)."""
    labels = sorted(counts, key=lambda label: (-counts[label], label))
    if not labels:
        return []
    kept = suppress_matrix([[counts[label] for label in labels]], k_min, suppress_zeros=False)[0]
    return [(label, None if value is None else int(value)) for label, value in zip(labels, kept, strict=True)]


def dataset_composition(store: ShardStore, k_min: int) -> Composition:
    result = Composition()
    samples = store.complete_shards("samples")
    result.shards = sorted(samples)
    for marker in samples.values():
        result.samples += int(marker.get("rows") or 0)
        result.sample_errors += int(marker.get("errors") or 0)
        _add(result.error_kinds, marker.get("error_kinds"))
        _add(result.status_counts, marker.get("status_counts"))
        if marker.get("run_id"):
            result.run_ids.add(marker["run_id"])
    boxes = store.complete_shards("person_boxes")
    result.box_shards = len(boxes)
    for marker in boxes.values():
        result.persons += int(marker.get("persons") or marker.get("boxes") or 0)
        result.valid_persons += int(marker.get("valid_persons") or 0)
    for axis, asset in LABEL_ASSETS.items():
        counts: Counter[str] = Counter()
        markers = store.complete_shards(asset, restricted=True)
        for shard, marker in markers.items():
            table = store.read_marked(asset, shard, marker, restricted=True, columns=["label"])
            counts.update(label for label in table.column("label").to_pylist() if label is not None)
        result.labelled_shards[axis] = len(markers)
        result.labels[axis] = published_distribution(dict(counts), k_min)
    return result
