"""Training (or importing) the gender and race classifiers from MLLM-ensemble consensus, and finding them again.

Consensus crops are gathered from every complete `*_votes` shard, re-cut from the shards' pixels, and used to
fine-tune an open_clip image tower with a linear head (classifier_training.py has the paper's recipe). The
checkpoint lands under ``<store>/models/<asset>/<fingerprint>/``; ``current.json`` beside it names the one that
label assets load, and its fingerprint is the asset's data version, so retraining makes labels stale.

No demographic cell smaller than k (stats/group_statistics.K_MIN) leaves restricted storage. The split lists
(shard, key, box_id), per-class counts, full confusion matrices and per-class accuracies with their supports
go to ``training_record.json`` in the checkpoint folder, owner-only (file 0o600, folder 0o700); classifier.json
keeps the backbone, classes, backbone fingerprint, votes versions, the number of examples and suppressed
metrics (classifier_training.published_metrics). The record lives beside the weights rather than under the
store's ``restricted/`` prefix because it belongs to exactly one checkpoint (same fingerprint folder, found
through the same current.json, deleted with it), the trained dir is always a local path where the mode is
enforced by the OS (the store may be object storage, where ``restricted/`` is a bucket-policy convention), and
the classifier asset writes nothing else to the store. ``publish_checkpoint`` applies the same split to every
checkpoint under its root, so imported checkpoints and those written before this rule are brought into line
the next time the classifier asset runs (``restrict_checkpoints`` does it by hand).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from laion_audit.models.fingerprint import fingerprint_path
from laion_audit.models.image_classifier import (
    META_FILE,
    RECORD_FILE,
    build_classifier,
    load_backbone,
    save_classifier,
    write_meta,
    write_training_record,
)
from laion_audit.annotation.crops import PersonBox
from laion_audit.shards.sources import ShardSource
from laion_audit.shards.store import ShardStore
from laion_audit.stats.group_statistics import K_MIN


class NotEnoughConsensusError(ValueError):
    """Too few consensus labels to train on; the message says how many there were, in how many classes."""


@dataclass
class ConsensusExamples:
    """The consensus-labelled crops: by reference (shard, key, box_id) and box, cut from the shards when training
    reads them (``locate`` set, ``images`` None), or, for tests and small imports, as images in memory."""

    images: list | None
    labels: list[int]
    refs: list[tuple[str, str, int]]  # (shard, key, box_id)
    # {shard: data version} of the vote shards used, and the shards left out because their boxes changed.
    votes_versions: dict[str, str] = field(default_factory=dict)
    skipped_stale: list[str] = field(default_factory=list)
    boxes: list[PersonBox] = field(default_factory=list)
    locate: Callable[[str], ShardSource] | None = None

    def source(self):
        """The training_batches.ExampleSource the training loop streams from."""
        from laion_audit.annotation.training_batches import InMemoryImages, ShardCrops

        if self.images is not None:
            return InMemoryImages(self.images, self.labels)
        if self.locate is None:
            raise ValueError("consensus examples without images need a locate function to cut their crops")
        # Resolved here, in the run's process: the workers get plain ShardSources, not the run's resources.
        sources = {shard: self.locate(shard) for shard in sorted({ref[0] for ref in self.refs})}
        return ShardCrops(self.refs, self.boxes, self.labels, sources.__getitem__)


def consensus_examples(
    store: ShardStore, votes_asset: str, classes: tuple[str, ...], locate: Callable[[str], ShardSource]
) -> ConsensusExamples:
    """Every consensus crop of the complete vote shards, by reference: no pixel is read here (training streams
    them from the shards), so a paper-scale consensus set costs a few bytes per crop in memory."""
    examples = ConsensusExamples(None, [], [], locate=locate)
    for shard, marker in sorted(store.complete_shards(votes_asset, restricted=True).items()):
        # Votes name boxes by box_id; if the boxes were recomputed since, the ids point at other people.
        boxes_marker = store.read_marker("person_boxes", shard) or {}
        recorded = (marker.get("recipe") or {}).get("upstream", {}).get("person_boxes")
        if recorded is None or recorded != boxes_marker.get("data_version"):
            examples.skipped_stale.append(shard)
            continue
        examples.votes_versions[shard] = marker["data_version"]
        votes = store.read_table(votes_asset, shard, restricted=True, columns=["key", "box_id", "consensus"])
        votes = votes.filter(pc.is_valid(votes["consensus"]))
        agreed = {(r["key"], r["box_id"]): r["consensus"] for r in votes.to_pylist()}
        if not agreed:
            continue
        boxes_table = store.read_table("person_boxes", shard)
        found = {}
        for r in boxes_table.to_pylist():
            if (r["key"], r["box_id"]) in agreed:
                found[(r["key"], r["box_id"])] = PersonBox(r["key"], r["box_id"], (r["x1"], r["y1"], r["x2"], r["y2"]))
        lost = [ref for ref in agreed if ref not in found]
        if lost:
            # Same boxes version as the votes, so every voted box must be there; never train on a silent subset.
            raise ValueError(f"{len(lost)} voted boxes of shard {shard} are missing from person_boxes, "
                             f"e.g. sample {lost[0][0]} box {lost[0][1]}")
        for ref in sorted(found):
            box = found[ref]
            examples.boxes.append(box)
            examples.labels.append(classes.index(agreed[ref]))
            examples.refs.append((shard, box.key, box.box_id))
    return examples


def train_from_consensus(
    examples: ConsensusExamples,
    classes: tuple[str, ...],
    backbone_reference: str,
    recipe: Any,
    out_root: Path,
    *,
    backbone_fingerprint: str | None = None,
    min_examples: int = 6,
    k_min: int = K_MIN,
) -> dict[str, Any]:
    """Train on the consensus crops and publish the checkpoint; metrics in classifier.json keep no cell < k_min."""
    from laion_audit.annotation.classifier_training import train_classifier

    counts = {name: examples.labels.count(i) for i, name in enumerate(classes)}
    if len(examples.labels) < min_examples or sum(1 for n in counts.values() if n) < 2:
        # The message reaches the run log, so it names no per-class count (those are in the restricted votes).
        present = sum(1 for n in counts.values() if n)
        raise NotEnoughConsensusError(
            f"need at least {min_examples} consensus crops in 2+ classes to train, got {len(examples.labels)} "
            f"in {present} class{'es' if present != 1 else ''}; "
            "materialize more vote shards, raise the vote sample size, or import a checkpoint"
        )
    divisor = getattr(recipe, "resample_divisor", None)
    if divisor is not None and max(counts.values()) < divisor:
        raise NotEnoughConsensusError(
            f"the recipe resamples every class to floor(largest class / {divisor}), and the largest class has fewer "
            f"than {divisor} consensus crops; materialize more vote shards or import a checkpoint")
    backbone, preprocess = load_backbone(backbone_reference)
    model = build_classifier(backbone, len(classes))
    from laion_audit.annotation.training_batches import TooFewToResampleError

    try:
        result = train_classifier(model, preprocess, examples.source(), examples.labels, list(classes), recipe)
    except TooFewToResampleError as exc:  # the split can fall short where all consensus crops did not
        raise NotEnoughConsensusError(f"{exc}; materialize more vote shards or import a checkpoint") from exc
    refs = {split: [list(examples.refs[i]) for i in indices] for split, indices in result.splits.items()}

    def per_class(indices):
        return {name: sum(1 for i in indices if examples.labels[i] == c) for c, name in enumerate(classes)}

    split_counts = {split: per_class(indices) for split, indices in result.splits.items()}
    run = dict(result.metadata)
    full = {
        "trained_on": {"n_examples": len(examples.labels), "class_counts": counts, "splits": refs,
                       "split_class_counts": split_counts, "votes_versions": examples.votes_versions,
                       "resampled_train_class_counts": per_class(result.train_indices)},
        "recipe": run.pop("recipe"),
        "deviations": run.pop("deviations"),
        "training_run": run,
        "output": {"logits": "raw head outputs",
                   "probabilities": "dirichlet_mean" if recipe.loss == "evidential" else "softmax"},
        "backbone_fingerprint": backbone_fingerprint,
        "best_epoch": result.best_epoch,
        "val_metrics": result.val_metrics,
        "test_metrics": result.test_metrics,
        "history": result.history,
    }
    extra, record = split_training_record(full, k_min)
    return publish_checkpoint(out_root, lambda folder: save_classifier(folder, model, backbone_reference, classes,
                                                                         extra, record), k_min=k_min)


def import_checkpoint(source_folder: Path, out_root: Path, classes: tuple[str, ...], *,
                      k_min: int = K_MIN) -> dict[str, Any]:
    meta = json.loads((source_folder / META_FILE).read_text())
    if tuple(meta["classes"]) != classes:
        raise ValueError(f"checkpoint {source_folder} has classes {meta['classes']}, expected {list(classes)}")
    return publish_checkpoint(out_root, lambda folder: shutil.copytree(source_folder, folder, dirs_exist_ok=True),
                              k_min=k_min)


# trained_on entries that count or name individual examples: restricted.
_RESTRICTED_TRAINED_ON = ("class_counts", "splits", "split_class_counts", "resampled_train_class_counts")
_HISTORY_OVERALL = ("val_accuracy", "val_kappa", "val_mean_uncertainty", "val_auroc_mispredicted")


def split_training_record(meta: dict[str, Any], k_min: int = K_MIN) -> tuple[dict[str, Any], dict[str, Any]]:
    """(publishable classifier.json content, restricted training record) from a checkpoint's full metadata.

    Idempotent: metadata that is already publishable gives itself back and an empty record, so it can run
    over checkpoints of any age. The record has the restricted ``trained_on`` entries, the full val/test
    metrics with per-class supports, and the full history when its per-epoch validation figures had to go.
    """
    from laion_audit.annotation.classifier_training import published_metrics, restricted_metrics

    public = dict(meta)
    record: dict[str, Any] = {}
    trained_on = dict(meta.get("trained_on") or {})
    moved = {key: trained_on.pop(key) for key in _RESTRICTED_TRAINED_ON if key in trained_on}
    if moved:
        record["trained_on"] = moved
    if "trained_on" in meta:
        public["trained_on"] = trained_on
    n_examples = trained_on.get("n_examples")
    for key in ("val_metrics", "test_metrics"):
        metrics = meta.get(key)
        if metrics and "suppressed_below" not in metrics:
            record[key] = restricted_metrics(metrics)
            public[key] = published_metrics(metrics, k_min, n_examples=n_examples)
    history = meta.get("history") or []
    if n_examples is not None and n_examples < k_min and any(
            epoch.get(field) is not None for epoch in history for field in _HISTORY_OVERALL):
        record["history"] = history
        public["history"] = [{**epoch, **{field: None for field in _HISTORY_OVERALL if field in epoch}}
                             for epoch in history]
    if record:
        public["privacy"] = {"suppressed_below": k_min, "training_record": RECORD_FILE,
                             "note": "cells counting fewer than suppressed_below people are null; the split lists, "
                                     "class counts and full metrics are in the owner-only training record"}
    return public, record


def restrict_checkpoint(folder: Path, k_min: int = K_MIN) -> None:
    """Move a checkpoint folder's restricted details out of classifier.json into the owner-only record."""
    os.chmod(folder, 0o700)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        return
    meta = json.loads(meta_path.read_text())
    public, record = split_training_record(meta, k_min)
    record_path = folder / RECORD_FILE
    if record:
        existing = json.loads(record_path.read_text()) if record_path.is_file() else {}
        write_training_record(folder, {**record, **existing})  # what the record already holds wins
    elif record_path.is_file():
        os.chmod(record_path, 0o600)
    if public != meta:
        write_meta(folder, public)


def restrict_checkpoints(out_root: Path, k_min: int = K_MIN) -> list[Path]:
    """``restrict_checkpoint`` on every checkpoint folder under ``out_root`` (skipping in-flight ``.tmp-*``)."""
    folders = sorted(p for p in out_root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if out_root.is_dir() else []
    for folder in folders:
        restrict_checkpoint(folder, k_min)
    return folders


def publish_checkpoint(out_root: Path, write: Callable[[Path], None], *, k_min: int = K_MIN) -> dict[str, Any]:
    """Write into a temporary folder, name it by its fingerprint, then point current.json at it.

    The folder is made owner-only and its restricted details moved to the training record before it gets its
    final name; older checkpoints under ``out_root`` are brought into line too (restrict_checkpoints).
    """
    out_root.mkdir(parents=True, exist_ok=True)
    tmp = out_root / f".tmp-{uuid.uuid4().hex}"
    write(tmp)
    restrict_checkpoint(tmp, k_min)
    fingerprint = fingerprint_path(tmp)
    final = out_root / fingerprint[:16]
    if final.exists():
        shutil.rmtree(tmp)
    else:
        tmp.rename(final)
    restrict_checkpoints(out_root, k_min)
    current = {"fingerprint": fingerprint, "folder": final.name}
    tmp_pointer = out_root / f".current-{uuid.uuid4().hex}.json"
    tmp_pointer.write_text(json.dumps(current))
    tmp_pointer.replace(out_root / "current.json")
    meta = json.loads((final / META_FILE).read_text())
    return {"fingerprint": fingerprint, "folder": str(final), "meta": meta}


def current_checkpoint(out_root: Path) -> tuple[Path, str]:
    pointer = out_root / "current.json"
    if not pointer.is_file():
        raise FileNotFoundError(f"no trained classifier at {out_root}: materialize the classifier asset first")
    current = json.loads(pointer.read_text())
    return out_root / current["folder"], current["fingerprint"]


def label_counts(table: pa.Table) -> dict[str, int]:
    labels = table.column("label").drop_null().to_pylist()
    return {label: labels.count(label) for label in sorted(set(labels))}
