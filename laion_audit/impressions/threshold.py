"""LAION's 0.3 image–text similarity filter, audited (Birhane et al. 2021 §3.3.3).

LAION-400M kept a pair when OpenAI CLIP ViT-B/32 scored its image and alt-text at cosine ≥ 0.3. Here every CLIP
of the registry scores the samples of each shard (``shard_similarities``: L2-normalised embeddings, cosine), and
the reduction says what share falls on each side of a threshold per model and how many samples a change of model
moves across it (``threshold_audit``). Counterfactual probes score one image against two captions and say which
the filter keeps (the astronaut photograph of scikit-image with Birhane et al.'s captions ships as the default).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from PIL import Image

from laion_audit.annotation.throughput import LoaderStats
from laion_audit.impressions.associations import Embedder
from laion_audit.shards.images import decode_image
from laion_audit.shards.sources import ShardSource

LAION_THRESHOLD = 0.3
STATUS_OK = "ok"
SIMILARITY_SCHEMA = pa.schema([
    pa.field("shard", pa.string(), nullable=False),
    pa.field("key", pa.string(), nullable=False),
    pa.field("model_role", pa.string(), nullable=False),
    pa.field("model_name", pa.string()),
    pa.field("model_fingerprint", pa.string()),
    pa.field("random_weights", pa.bool_()),
    pa.field("similarity", pa.float64()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
])


def decoded(data: bytes) -> tuple[Image.Image, tuple[int, int]]:
    """DataLoader ``prepare``: the upright RGB image every model step sees (shards/images.py), and its size."""
    image = decode_image(data)
    return image, image.size


def paired_cosine(images: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """Row-wise cosine of image i and text i, in float64."""
    a = np.asarray(images, dtype=np.float64)
    b = np.asarray(texts, dtype=np.float64)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def shard_similarities(source: ShardSource, samples: pa.Table, clips: Mapping[str, Embedder], *,
                       batch_size: int = 64, workers: int = 0, stats: LoaderStats | None = None) -> pa.Table:
    """One row per (sample key, model): the image–alt-text cosine, or the status saying why there is none."""
    from laion_audit.annotation.image_loader import load_batches

    captions: dict[str, str] = {}
    outcome: dict[str, tuple[str, str | None]] = {}  # key -> (status, error) for samples that are not scored
    with_image = []
    for sample in samples.select(["key", "has_image", "status", "error_kind", "source_format", "caption"]).to_pylist():
        key = sample["key"]
        if not sample["has_image"]:
            text_only = sample["source_format"] != "webdataset"
            outcome[key] = (("no_image", "text-only shard: no image to score") if text_only
                            else ("upstream_error", f"samples: {sample['error_kind'] or sample['status']}"))
        elif not (sample["caption"] or "").strip():
            outcome[key] = ("no_caption", "the sample has no alt-text to score")
        else:
            captions[key] = sample["caption"]
            with_image.append(key)
    scores: dict[str, dict[str, float]] = {}
    stats = stats if stats is not None else LoaderStats()
    for batch in load_batches(source, with_image, decoded, batch_size=batch_size, workers=workers, stats=stats):
        started = time.perf_counter()
        for key, error in batch.failed.items():
            outcome[key] = ("error", error)
        for key in batch.missing:
            outcome[key] = ("error", "the sample has no image member when re-reading the shard")
        if batch.ready:
            texts = [captions[key] for key in batch.ready]
            for role, clip in clips.items():
                similarity = paired_cosine(clip.image_embeddings(batch.values, batch_size=batch_size),
                                           clip.text_embeddings(texts, batch_size=batch_size))
                for key, value in zip(batch.ready, similarity, strict=True):
                    scores.setdefault(key, {})[role] = float(value)
        stats.model_s += time.perf_counter() - started
    rows = []
    for key in samples.column("key").to_pylist():
        status, error = outcome.get(key, (STATUS_OK, None))
        if status == STATUS_OK and key not in scores:
            status, error = "error", "image listed in samples was not found when re-reading the shard"
        for role, clip in clips.items():
            rows.append({"shard": source.key, "key": key, "model_role": role, "model_name": clip.name,
                         "model_fingerprint": clip.fingerprint, "random_weights": clip.random_weights,
                         "similarity": scores[key][role] if status == STATUS_OK else None, "status": status,
                         "error": error})
    return pa.Table.from_pylist(rows, schema=SIMILARITY_SCHEMA)


def threshold_audit(frame: pl.LazyFrame | pl.DataFrame, threshold: float = LAION_THRESHOLD) -> dict[str, Any]:
    """Shares on each side of ``threshold`` per model (kept = cosine ≥ threshold, LAION's rule) and, per pair of
    models, how many scored samples one keeps and the other drops."""
    lazy = frame.lazy()
    scored = lazy.filter(pl.col("status") == STATUS_OK).with_columns(kept=pl.col("similarity") >= threshold)
    shares = (lazy.group_by("model_role").agg(
        samples=pl.len(), scored=(pl.col("status") == STATUS_OK).sum(),
        kept=((pl.col("status") == STATUS_OK) & (pl.col("similarity") >= threshold)).sum(),
        mean_similarity=pl.col("similarity").mean()).sort("model_role").collect())
    scored_any = pl.col("scored") > 0  # a model that scored nothing has no share (null), not NaN
    shares = shares.with_columns(below=pl.col("scored") - pl.col("kept"),
                                 share_kept=pl.when(scored_any).then(pl.col("kept") / pl.col("scored")),
                                 share_below=pl.when(scored_any).then((pl.col("scored") - pl.col("kept"))
                                                                      / pl.col("scored")))
    left = scored.select("shard", "key", model_a="model_role", kept_a="kept")
    right = scored.select("shard", "key", model_b="model_role", kept_b="kept")
    crossings = (left.join(right, on=["shard", "key"]).filter(pl.col("model_a") < pl.col("model_b"))
                 .group_by("model_a", "model_b").agg(
                     both_kept=(pl.col("kept_a") & pl.col("kept_b")).sum(),
                     kept_by_a_only=(pl.col("kept_a") & ~pl.col("kept_b")).sum(),
                     kept_by_b_only=(~pl.col("kept_a") & pl.col("kept_b")).sum(),
                     both_dropped=(~pl.col("kept_a") & ~pl.col("kept_b")).sum())
                 .sort("model_a", "model_b").collect())
    statuses = lazy.group_by("model_role", "status").agg(rows=pl.len()).sort("model_role", "status").collect()
    return {"threshold": threshold, "rule": "kept iff cosine(image, alt-text) >= threshold",
            "shares": [{"model": row.pop("model_role"), **row} for row in shares.to_dicts()],
            "crossings": crossings.to_dicts(), "statuses": statuses.to_dicts()}


# ------------------------------------------------------------------ counterfactual probes
BIRHANE_CAPTIONS = ("This is a portrait of an astronaut with the American flag",
                    "This is a photograph of a smiling housewife in an orange jumpsuit with the American flag")


@dataclass(frozen=True)
class Probe:
    name: str
    image: Image.Image
    caption_a: str
    caption_b: str
    image_source: str


def astronaut_probe() -> Probe:
    """scikit-image's astronaut photograph (Eileen Collins, NASA, public domain) with Birhane et al.'s captions."""
    from skimage import data

    return Probe("astronaut", Image.fromarray(data.astronaut()), *BIRHANE_CAPTIONS,
                 image_source="skimage.data.astronaut()")


def load_probes(path: str | Path) -> list[Probe]:
    """Probes from a JSON list of {"name", "image" (path, relative to the file), "caption_a", "caption_b"}."""
    path = Path(path)
    entries = json.loads(path.read_text())
    probes = []
    for index, entry in enumerate(entries):
        missing = [k for k in ("name", "image", "caption_a", "caption_b") if not entry.get(k)]
        if missing:
            raise ValueError(f"{path}: probe {index} lacks {', '.join(missing)}")
        image_path = (path.parent / entry["image"]).resolve()
        with Image.open(image_path) as image:
            probes.append(Probe(entry["name"], image.convert("RGB"), entry["caption_a"], entry["caption_b"],
                                str(image_path)))
    return probes


def run_probes(clips: Mapping[str, Embedder], probes: Sequence[Probe],
               threshold: float = LAION_THRESHOLD) -> list[dict[str, Any]]:
    """Per model and probe: both cosines, whether a ``threshold`` filter keeps each caption, and which scores
    higher."""
    rows = []
    for role, clip in clips.items():
        for probe in probes:
            image = clip.image_embeddings([probe.image])
            texts = clip.text_embeddings([probe.caption_a, probe.caption_b])
            a, b = paired_cosine(np.repeat(image, 2, axis=0), texts)
            rows.append({"model": role, "model_name": clip.name, "random_weights": clip.random_weights,
                         "probe": probe.name, "image": probe.image_source, "caption_a": probe.caption_a,
                         "caption_b": probe.caption_b, "similarity_a": float(a), "similarity_b": float(b),
                         "kept_a": bool(a >= threshold), "kept_b": bool(b >= threshold),
                         "higher": "a" if a > b else "b" if b > a else "tie"})
    return rows
