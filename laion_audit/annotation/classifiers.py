"""Training (or importing) the gender and race classifiers from MLLM-ensemble consensus, and finding them again.

Consensus crops are gathered from every complete `*_votes` shard, re-cut from the shards' pixels, and used to
fine-tune an open_clip image tower with a linear head (classifier_training.py has the paper's recipe). The
checkpoint lands under ``<store>/models/<asset>/<fingerprint>/``; ``current.json`` beside it names the one that
label assets load, and its fingerprint is the asset's data version, so retraining makes labels stale.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from laion_audit.models.fingerprint import fingerprint_path
from laion_audit.models.image_classifier import META_FILE, build_classifier, load_backbone, save_classifier
from laion_audit.annotation.crops import PersonBox, crop, iter_person_images
from laion_audit.shards.sources import ShardSource
from laion_audit.shards.store import ShardStore


class NotEnoughConsensusError(ValueError):
    """Too few consensus labels to train on; the message says how many of each class there were."""


@dataclass
class ConsensusExamples:
    images: list
    labels: list[int]
    refs: list[tuple[str, str, int]]  # (shard, key, box_id)
    # {shard: data version} of the vote shards used, and the shards left out because their boxes changed.
    votes_versions: dict[str, str] = field(default_factory=dict)
    skipped_stale: list[str] = field(default_factory=list)


def consensus_examples(
    store: ShardStore, votes_asset: str, classes: tuple[str, ...], locate: Callable[[str], ShardSource]
) -> ConsensusExamples:
    examples = ConsensusExamples([], [], [])
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
        wanted = [
            PersonBox(r["key"], r["box_id"], (r["x1"], r["y1"], r["x2"], r["y2"]))
            for r in boxes_table.to_pylist()
            if (r["key"], r["box_id"]) in agreed
        ]
        for box, image in iter_person_images(locate(shard), wanted):
            examples.images.append(crop(image, box))
            examples.labels.append(classes.index(agreed[(box.key, box.box_id)]))
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
) -> dict[str, Any]:
    from laion_audit.annotation.classifier_training import train_classifier

    counts = {name: examples.labels.count(i) for i, name in enumerate(classes)}
    if len(examples.labels) < min_examples or sum(1 for n in counts.values() if n) < 2:
        raise NotEnoughConsensusError(
            f"need at least {min_examples} consensus crops in 2+ classes to train, got {counts}; "
            "materialize more vote shards, raise the vote sample size, or import a checkpoint"
        )
    backbone, preprocess = load_backbone(backbone_reference)
    model = build_classifier(backbone, len(classes))
    result = train_classifier(model, preprocess, examples.images, examples.labels, list(classes), recipe)
    refs = {split: [list(examples.refs[i]) for i in indices] for split, indices in result.splits.items()}
    extra = {
        "trained_on": {"n_examples": len(examples.labels), "class_counts": counts, "splits": refs,
                       "votes_versions": examples.votes_versions},
        "backbone_fingerprint": backbone_fingerprint,
        "best_epoch": result.best_epoch,
        "val_metrics": result.val_metrics,
        "test_metrics": result.test_metrics,
        "history": result.history,
    }
    return publish_checkpoint(out_root, lambda folder: save_classifier(folder, model, backbone_reference, classes,
                                                                         extra))


def import_checkpoint(source_folder: Path, out_root: Path, classes: tuple[str, ...]) -> dict[str, Any]:
    meta = json.loads((source_folder / META_FILE).read_text())
    if tuple(meta["classes"]) != classes:
        raise ValueError(f"checkpoint {source_folder} has classes {meta['classes']}, expected {list(classes)}")
    return publish_checkpoint(out_root, lambda folder: shutil.copytree(source_folder, folder, dirs_exist_ok=True))


def publish_checkpoint(out_root: Path, write: Callable[[Path], None]) -> dict[str, Any]:
    """Write into a temporary folder, name it by its fingerprint, then point current.json at it."""
    out_root.mkdir(parents=True, exist_ok=True)
    tmp = out_root / f".tmp-{uuid.uuid4().hex}"
    write(tmp)
    fingerprint = fingerprint_path(tmp)
    final = out_root / fingerprint[:16]
    if final.exists():
        shutil.rmtree(tmp)
    else:
        tmp.rename(final)
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
