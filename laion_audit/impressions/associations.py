"""Per image and attribute, how much more a CLIP model matches the positive prompt than the negative one.

m_a(j) = cos(img_j, t_a+) − cos(img_j, t_a−) (Wolfe et al., utils.py:21-26): cosines of the raw (not
pre-normalised) embeddings, computed in float64, one prompt per pole, no templates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyarrow as pa
from PIL import Image

from laion_audit.impressions.lexicon import PromptPair
from laion_audit.impressions.ratings import RatingsDataset

STATUS_OK, STATUS_ERROR, STATUS_MISSING_IMAGE = "ok", "error", "missing_image"


class Embedder(Protocol):
    name: str
    fingerprint: str
    random_weights: bool

    def image_embeddings(self, images: Sequence[Image.Image], *, batch_size: int = ..., normalize: bool = ...
                         ) -> np.ndarray: ...

    def text_embeddings(self, texts: Sequence[str], *, batch_size: int = ..., normalize: bool = ...) -> np.ndarray: ...


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """cos between every row of ``a`` and every row of ``b``, in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a @ b.T) / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))


def association_scores(images: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """(images, attributes) matrix of cos(image, positive_a) − cos(image, negative_a)."""
    return cosine_matrix(images, positive) - cosine_matrix(images, negative)


@dataclass
class Associations:
    attributes: list[str]
    stimuli: list[str]  # stimuli with scores, aligned with ``scores``
    scores: np.ndarray
    errors: dict[str, str] = field(default_factory=dict)  # stimulus -> why its image could not be used
    missing_images: list[str] = field(default_factory=list)


def _open(path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


def compute_associations(clip: Embedder, dataset: RatingsDataset, pairs: list[PromptPair], *,
                         batch_size: int = 64) -> Associations:
    """Scores for every stimulus of ``dataset`` whose image decodes; the others are recorded in ``errors``."""
    attributes = [pair.attribute for pair in pairs]
    texts = clip.text_embeddings([p.positive for p in pairs] + [p.negative for p in pairs], normalize=False)
    positive, negative = texts[:len(pairs)], texts[len(pairs):]
    stimuli, chunks, errors = [], [], {}
    for start in range(0, len(dataset.stimuli), batch_size):
        batch, names = [], []
        for stimulus in dataset.stimuli[start:start + batch_size]:
            try:
                batch.append(_open(dataset.images[stimulus]))
                names.append(stimulus)
            except Exception as exc:  # noqa: BLE001 - a bad file is its own recorded row
                errors[stimulus] = f"image could not be decoded: {type(exc).__name__}: {exc}"
        if batch:
            embedded = clip.image_embeddings(batch, batch_size=batch_size, normalize=False)
            chunks.append(association_scores(embedded, positive, negative))
            stimuli.extend(names)
    scores = np.concatenate(chunks) if chunks else np.zeros((0, len(pairs)))
    return Associations(attributes, stimuli, scores, errors, list(dataset.missing_images))


def associations_table(result: Associations, clip: Embedder) -> pa.Table:
    """One row per stimulus (scored, undecodable or without image), one float64 column per attribute."""
    rows = len(result.stimuli)
    stimuli = result.stimuli + list(result.errors) + result.missing_images
    status = ([STATUS_OK] * rows + [STATUS_ERROR] * len(result.errors)
              + [STATUS_MISSING_IMAGE] * len(result.missing_images))
    error = [None] * rows + list(result.errors.values()) + ["rated stimulus has no image file"] * len(
        result.missing_images)
    padding = len(stimuli) - rows
    columns = {"stimulus": pa.array(stimuli, pa.string()), "status": pa.array(status, pa.string()),
               "error": pa.array(error, pa.string()),
               "model_name": pa.array([clip.name] * len(stimuli), pa.string()),
               "model_fingerprint": pa.array([clip.fingerprint] * len(stimuli), pa.string()),
               "random_weights": pa.array([clip.random_weights] * len(stimuli), pa.bool_())}
    for index, attribute in enumerate(result.attributes):
        values = list(result.scores[:, index]) + [None] * padding
        columns[attribute] = pa.array(values, pa.float64())
    return pa.table(columns)


def scores_from_table(table: pa.Table, attributes: list[str]) -> tuple[list[str], np.ndarray]:
    """(stimuli, scores) of the rows with status ok, as written by :func:`associations_table`."""
    ok = [status == STATUS_OK for status in table.column("status").to_pylist()]
    stimuli = [s for s, keep in zip(table.column("stimulus").to_pylist(), ok, strict=True) if keep]
    scores = np.column_stack([np.asarray(table.column(a).to_pylist(), dtype=np.float64)[ok] for a in attributes]) \
        if attributes else np.zeros((len(stimuli), 0))
    return stimuli, scores
