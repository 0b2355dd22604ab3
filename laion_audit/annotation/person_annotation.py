"""Per-shard person annotations: ensemble votes, classifier labels and captions, from boxes and pixels.

Each function returns one shard's table. Labels and captions account for every sample key (a row per valid
person, or one row saying why there is none); votes cover only the seeded sample of valid persons (vote_sample.py) they were asked about.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, ImageDraw

from laion_audit.annotation.schemas import PERSON_CAPTIONS_SCHEMA, VOTES_SCHEMA, label_schema
from laion_audit.shards.chunking import chunked
from laion_audit.models.prompts import CAPTION_PROMPT, build_prompts, consensus, to_class
from laion_audit.annotation.throughput import LoaderStats
from laion_audit.annotation.crops import PersonBox, crop, iter_person_images, valid_boxes
from laion_audit.annotation.vote_sample import sample_boxes
from laion_audit.shards.sources import ShardSource


@contextmanager
def _model_time(stats: LoaderStats | None) -> Iterator[None]:
    started = time.perf_counter()
    yield
    if stats is not None:
        stats.model_s += time.perf_counter() - started


def vote_shard(
    source: ShardSource,
    boxes_table: pa.Table,
    members: Sequence[Any],
    question: str,
    *,
    sample_rate: float,
    seed: int,
    rule: str,
    batch_size: int = 16,
    workers: int = 0,
    stats: LoaderStats | None = None,
) -> pa.Table:
    """Ask every ensemble member about each sampled crop; keep each raw answer and the crop's consensus.

    A valid person is sampled on its own identity (vote_sample.py), so ``sample_rate`` is the share of valid
    persons voted on, dataset-wide.
    """
    names = [member.name for member in members]
    if len(set(names)) != len(names):
        raise ValueError(f"ensemble members must have distinct names (votes rows name them), got {names}")
    chosen = sample_boxes(valid_boxes(boxes_table), rate=sample_rate, seed=seed, shard=source.key)
    rows: list[dict[str, Any]] = []
    # One seeded option-shuffle stream per shard and question, in crop order (the paper seeds once per run).
    prompts = build_prompts(question, len(chosen), seed=zlib.crc32(f"{seed}:{source.key}:{question}".encode()))
    crops = ((box, crop(image, box)) for box, image in iter_person_images(source, chosen, workers=workers,
                                                                                  stats=stats))
    prompt_of = {(box.key, box.box_id): prompt for box, prompt in zip(chosen, prompts, strict=True)}
    for batch in chunked(crops, batch_size):
        batch_prompts = [prompt_of[(box.key, box.box_id)] for box, _ in batch]
        with _model_time(stats):
            answers = [member.generate([c for _, c in batch], [p.text for p in batch_prompts], 5) for member in members]
        for i, (box, _) in enumerate(batch):
            prompt = batch_prompts[i]
            parsed = [to_class(question, prompt.parse(member_answers[i])) for member_answers in answers]
            agreed = consensus(parsed, rule)
            for member, member_answers, label in zip(members, answers, parsed, strict=True):
                rows.append({
                    "shard": source.key, "key": box.key, "box_id": box.box_id, "member": member.name,
                    "member_fingerprint": member.fingerprint, "options": json.dumps(list(prompt.options)),
                    "raw_answer": member_answers[i], "parsed": label, "consensus": agreed, "consensus_rule": rule,
                    "status": "ok", "error": None, "random_weights": member.random_weights,
                })
    return pa.Table.from_pylist(rows, schema=VOTES_SCHEMA)


def _fallback_rows(boxes_table: pa.Table, model: Any) -> dict[str, dict[str, Any]]:
    """For each sample key, the row to publish when it yields no person row, saying why (from person_boxes)."""
    valid_keys = set(boxes_table.filter(pc.fill_null(boxes_table["valid"], False)).column("key").to_pylist())
    rows: dict[str, dict[str, Any]] = {}
    for row in boxes_table.select(["shard", "key", "status", "error"]).to_pylist():
        if row["key"] in rows:
            continue
        if row["key"] in valid_keys:
            status, error = "error", "image with valid boxes was not found when re-reading the shard"
        elif row["status"] != "ok":
            status, error = row["status"], row["error"]
        else:
            status, error = "no_valid_person", None
        rows[row["key"]] = {
            "shard": row["shard"], "key": row["key"], "box_id": None, "status": status, "error": error,
            "model_name": model.name, "model_fingerprint": model.fingerprint, "random_weights": model.random_weights,
        }
    return rows


def _ordered(boxes_table: pa.Table, person_rows: list[dict], model: Any) -> list[dict]:
    """Person rows in sample order, and the fallback row for every key that produced none."""
    by_key: dict[str, list[dict]] = defaultdict(list)
    for row in person_rows:
        by_key[row["key"]].append(row)
    fallback = _fallback_rows(boxes_table, model)
    return [row for key in fallback for row in (by_key.get(key) or [fallback[key]])]


def abstains(logits, abstain_max_logit_at_or_below: float | None) -> bool:
    """The paper's abstain rule (race_labeling_classifier.py:96-122): the raw max logit at or below the threshold."""
    return abstain_max_logit_at_or_below is not None and float(max(logits)) <= abstain_max_logit_at_or_below


def label_shard(
    source: ShardSource,
    boxes_table: pa.Table,
    classifier: Any,
    classes: Sequence[str],
    *,
    abstain_max_logit_at_or_below: float | None = None,
    abstain_class: str = "unclear",
    batch_size: int = 64,
    workers: int = 0,
    stats: LoaderStats | None = None,
) -> pa.Table:
    """Classifier probabilities per valid person; the label is the argmax class, or ``abstain_class`` when the raw
    max logit is at or below ``abstain_max_logit_at_or_below`` (``abstains``; None: never abstain)."""
    boxes = valid_boxes(boxes_table)
    person_rows: list[dict[str, Any]] = []
    images = iter_person_images(source, boxes, workers=workers, stats=stats)
    for batch in chunked(((box, crop(image, box)) for box, image in images), batch_size):
        with _model_time(stats):
            logits = classifier.predict_logits([c for _, c in batch])
            probabilities = classifier.probabilities(logits)
        for (box, _), z, p in zip(batch, logits, probabilities, strict=True):
            label = abstain_class if abstains(z, abstain_max_logit_at_or_below) else classes[int(z.argmax())]
            person_rows.append({
                "shard": source.key, "key": box.key, "box_id": box.box_id, "label": label,
                **{f"p_{name}": float(v) for name, v in zip(classes, p, strict=True)},
                "status": "ok", "error": None, "model_name": classifier.name,
                "model_fingerprint": classifier.fingerprint, "random_weights": classifier.random_weights,
            })
    rows = _ordered(boxes_table, person_rows, classifier)
    return pa.Table.from_pylist(rows, schema=label_schema(tuple(classes)))


def highlight(image: Image.Image, box: PersonBox, width: int = 3) -> Image.Image:
    """The paper's visual prompt: a copy of the full image with a red rectangle outline around the person."""
    marked = image.copy()
    ImageDraw.Draw(marked).rectangle(box.xyxy, outline=(255, 0, 0), width=width)
    return marked


def caption_shard(
    source: ShardSource, boxes_table: pa.Table, captioner: Any, *, max_new_tokens: int, batch_size: int = 8,
    workers: int = 0, stats: LoaderStats | None = None,
) -> pa.Table:
    boxes = valid_boxes(boxes_table)
    person_rows: list[dict[str, Any]] = []
    images = iter_person_images(source, boxes, workers=workers, stats=stats)
    for batch in chunked(((box, highlight(image, box)) for box, image in images), batch_size):
        with _model_time(stats):
            captions = captioner.generate([m for _, m in batch], [CAPTION_PROMPT] * len(batch), max_new_tokens)
        for (box, _), caption in zip(batch, captions, strict=True):
            person_rows.append({
                "shard": source.key, "key": box.key, "box_id": box.box_id, "caption": caption, "status": "ok",
                "error": None, "model_name": captioner.name, "model_fingerprint": captioner.fingerprint,
                "random_weights": captioner.random_weights,
            })
    rows = _ordered(boxes_table, person_rows, captioner)
    return pa.Table.from_pylist(rows, schema=PERSON_CAPTIONS_SCHEMA)
