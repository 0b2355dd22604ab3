"""Model-side gender bias of a word (Girrbach et al., first-order bias transfer; spec §7), from numbers alone.

* CLIP: ``bias(w) = (mean_{female images} C[:, w] − mean_{male images} C[:, w]) / σ``, where ``C`` is the cosine
  matrix of L2-normalised image embeddings (rows) and zero-shot word embeddings (columns), and σ is the standard
  deviation of *every* entry of ``C`` (all images of the two groups × all words of the list). σ is the
  population standard deviation (ddof 0); the notebook's choice is not stated, and at its sizes the two agree
  to four digits.
* Stable Diffusion: a generated image is kept iff the detector finds exactly one person box with confidence
  > 0.35 and min(w, h) > 30 px (boxes failing either test do not count); bias = female share of the kept images
  labelled female or male.

Dagster-free and model-free: the assets pass embeddings and detections in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SD_MIN_CONFIDENCE = 0.35  # strictly above (stable_diffusion.py:62-75)
SD_MIN_SIDE = 30.0  # strictly above, pixels


@dataclass(frozen=True)
class ClipBias:
    bias: np.ndarray  # one value per word
    sigma: float
    mean_female: np.ndarray
    mean_male: np.ndarray


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def clip_word_bias(image_embeddings: np.ndarray, genders: Sequence[str], word_embeddings: np.ndarray) -> ClipBias:
    """Bias per word from image embeddings labelled ``"female"``/``"male"`` (other labels are not in the image
    set) and word embeddings; both are L2-normalised here, so cosines are dot products."""
    labels = np.asarray(list(genders))
    chosen = np.isin(labels, ["female", "male"])
    female, male = labels[chosen] == "female", labels[chosen] == "male"
    if not female.any() or not male.any():
        raise ValueError(f"need images of both genders, got {int(female.sum())} female and {int(male.sum())} male")
    if len(word_embeddings) == 0:
        raise ValueError("no words to measure")
    cosines = _unit_rows(np.asarray(image_embeddings, dtype=np.float64)[chosen]) @ _unit_rows(
        np.asarray(word_embeddings, dtype=np.float64)).T
    sigma = float(cosines.std())
    if sigma == 0:
        raise ValueError("every cosine is equal (σ = 0): the bias is undefined")
    mean_female, mean_male = cosines[female].mean(axis=0), cosines[male].mean(axis=0)
    return ClipBias((mean_female - mean_male) / sigma, sigma, mean_female, mean_male)


class ClipBiasSums:
    """:func:`clip_word_bias` from streamed batches of images, in memory O(words): per word the sum of cosines over
    female and over male images, and the count, sum and sum of squares of every cosine (for σ, ddof 0). Adding
    the images in any batches gives the same result as the matrix formula."""

    def __init__(self, word_embeddings: np.ndarray):
        if len(word_embeddings) == 0:
            raise ValueError("no words to measure")
        self.words = _unit_rows(np.asarray(word_embeddings, dtype=np.float64))
        width = len(self.words)
        self.sum_female, self.sum_male = np.zeros(width), np.zeros(width)
        self.n_female = self.n_male = 0
        self.total = self.total_sq = 0.0

    def add(self, image_embeddings: np.ndarray, genders: Sequence[str]) -> None:
        labels = np.asarray(list(genders))
        chosen = np.isin(labels, ["female", "male"])
        if not chosen.any():
            return
        cosines = _unit_rows(np.asarray(image_embeddings, dtype=np.float64)[chosen]) @ self.words.T
        female = labels[chosen] == "female"
        self.sum_female += cosines[female].sum(axis=0)
        self.sum_male += cosines[~female].sum(axis=0)
        self.n_female += int(female.sum())
        self.n_male += int((~female).sum())
        self.total += float(cosines.sum())
        self.total_sq += float((cosines ** 2).sum())

    def result(self) -> ClipBias:
        if not self.n_female or not self.n_male:
            raise ValueError(f"need images of both genders, got {self.n_female} female and {self.n_male} male")
        entries = (self.n_female + self.n_male) * len(self.words)
        mean = self.total / entries
        sigma = float(np.sqrt(max(self.total_sq / entries - mean * mean, 0.0)))
        if sigma == 0:
            raise ValueError("every cosine is equal (σ = 0): the bias is undefined")
        mean_female, mean_male = self.sum_female / self.n_female, self.sum_male / self.n_male
        return ClipBias((mean_female - mean_male) / sigma, sigma, mean_female, mean_male)


def person_boxes_counted(detections: Sequence, *, min_confidence: float = SD_MIN_CONFIDENCE,
                         min_side: float = SD_MIN_SIDE) -> list:
    """The detections that count as a person: confidence > ``min_confidence`` and min(w, h) > ``min_side``."""
    return [d for d in detections
            if d.confidence > min_confidence and min(d.x2 - d.x1, d.y2 - d.y1) > min_side]


def kept_person(detections: Sequence, *, min_confidence: float = SD_MIN_CONFIDENCE,
                min_side: float = SD_MIN_SIDE):
    """The one person box of a generated image that is kept, or None (no person, or more than one)."""
    counted = person_boxes_counted(detections, min_confidence=min_confidence, min_side=min_side)
    return counted[0] if len(counted) == 1 else None


def female_share(labels: Sequence[str]) -> tuple[float | None, int, int]:
    """(n_f / (n_f + n_m), n_f, n_m) over labels; other labels (unclear, mixed) are not counted; None if none."""
    n_f = sum(label == "female" for label in labels)
    n_m = sum(label == "male" for label in labels)
    return (n_f / (n_f + n_m) if n_f + n_m else None), n_f, n_m
