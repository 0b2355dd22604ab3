"""Model bias per model (CLIP, Stable Diffusion) from the registry's models and the chain's outputs; Dagster-free.

* :func:`labelled_image_set` / :func:`iter_labelled_crops` — the image set "chain_gender_labels": person crops of
  every complete shard whose perceived-gender label is female or male, cut from the shard's images exactly as the
  labels were (annotation/crops.py). Labels computed on boxes that have since changed are left out and counted.
  Crops, labels and per-image embeddings are per-person rows: they are streamed and reduced to per-word sums,
  never written.
* :func:`clip_bias_rows` — per word list and word, CLIP bias (stats/model_bias.py); published only when each
  gender has at least k images.
* :func:`generate_and_label` — Stable Diffusion: per prompt, one image per seed, the keep rule, the chain's gender
  classifier on the crop of the one kept person box; per-prompt female share.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from laion_audit.annotation.crops import PersonBox, crop, iter_person_images
from laion_audit.shards.sources import ShardSource
from laion_audit.shards.store import ShardStore
from laion_audit.shards.chunking import chunked
from laion_audit.stats.model_bias import SD_MIN_CONFIDENCE, SD_MIN_SIDE, ClipBiasSums, female_share, kept_person

IMAGE_SET = "chain_gender_labels"
LABELS = "gender_labels"
BOXES = "person_boxes"


@dataclass
class LabelledImageSet:
    """The shards whose labels make up the image set: {shard: (labels marker, boxes marker)}, and those left out
    because their labels were computed on boxes that have since changed."""

    shards: dict[str, tuple[dict, dict]] = field(default_factory=dict)
    stale_shards: list[str] = field(default_factory=list)

    def versions(self) -> dict[str, str]:
        """{shard: gender_labels data version}: the image set's version, recorded in the recipe."""
        return {shard: labels["data_version"] for shard, (labels, _) in sorted(self.shards.items())}


def labelled_image_set(store: ShardStore) -> LabelledImageSet:
    """Every shard with complete labels whose boxes are still the ones the labels were made from (markers only)."""
    found = LabelledImageSet()
    for shard, marker in sorted(store.complete_shards(LABELS, True).items()):
        boxes_marker = store.read_marker(BOXES, shard)
        used = ((marker.get("recipe") or {}).get("upstream") or {}).get(BOXES)
        if boxes_marker is None or used != boxes_marker.get("data_version"):
            found.stale_shards.append(shard)
        else:
            found.shards[shard] = (marker, boxes_marker)
    return found


def iter_labelled_crops(store: ShardStore, locate: Callable[[str], ShardSource], image_set: LabelledImageSet,
                        genders: Sequence[str] = ("female", "male")) -> Iterator[tuple[Image.Image, str]]:
    """(crop, label) of each valid person labelled one of ``genders``, shard by shard, cut as the labels were."""
    for shard, (labels_marker, boxes_marker) in sorted(image_set.shards.items()):
        labels = store.read_marked(LABELS, shard, labels_marker, True).to_pylist()
        wanted = {(r["key"], r["box_id"]): r["label"] for r in labels
                  if r["box_id"] is not None and r["status"] == "ok" and r["label"] in genders}
        if not wanted:
            continue
        boxes = [PersonBox(r["key"], r["box_id"], (r["x1"], r["y1"], r["x2"], r["y2"]))
                 for r in store.read_marked(BOXES, shard, boxes_marker).to_pylist()
                 if (r["key"], r["box_id"]) in wanted]
        for box, image in iter_person_images(locate(shard), boxes):
            yield crop(image, box), wanted[(box.key, box.box_id)]


def clip_bias_rows(embedder: Any, crops: Iterable[tuple[Image.Image, str]], word_lists: Mapping[str, Sequence[str]],
                   *, k_min: int, batch_size: int = 64, templates=None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows, summary): one row per word list and word with its bias, or with bias None when the image set has
    fewer than ``k_min`` images of a gender (nothing computed from it is published). Images are embedded in
    batches and reduced to per-word sums (stats/model_bias.ClipBiasSums): memory does not grow with the set."""
    sums = {name: ClipBiasSums(embedder.word_embeddings(list(words), templates)) for name, words in word_lists.items()}
    for batch in chunked(crops, batch_size):
        embeddings = embedder.image_embeddings([image for image, _ in batch], batch_size=batch_size)
        for accumulator in sums.values():
            accumulator.add(embeddings, [label for _, label in batch])
    any_sums = next(iter(sums.values()))
    n_f, n_m = any_sums.n_female, any_sums.n_male
    summary: dict[str, Any] = {"image_set": IMAGE_SET, "published": n_f >= k_min and n_m >= k_min,
                               "k_min": k_min, "sigma": {}}
    if not summary["published"]:
        summary["reason"] = f"fewer than k={k_min} images of a gender in the image set"
        rows = [{"word_list": name, "word": word, "bias": None, "image_set": IMAGE_SET, "suppressed": True}
                for name, words in word_lists.items() for word in words]
        return rows, summary
    summary.update(n_female_images=n_f, n_male_images=n_m)
    rows = []
    for name, words in word_lists.items():
        result = sums[name].result()
        summary["sigma"][name] = result.sigma
        rows.extend({"word_list": name, "word": word, "bias": float(b), "image_set": IMAGE_SET, "suppressed": False}
                    for word, b in zip(words, result.bias, strict=True))
    return rows, summary


def prompt_for(category: str) -> str:
    """The paper's prompt shape: "a photo of a/an <category>" (article by the first letter)."""
    return f"a photo of {'an' if category[:1].lower() in 'aeiou' else 'a'} {category}"


def category_of(prompt: str) -> str:
    """The paper's category of a prompt: minus "a photo of", minus the first token (the article)."""
    rest = re.sub(r"^a photo of\s+", "", prompt.strip(), flags=re.IGNORECASE)
    return rest.split(" ", 1)[1] if " " in rest else rest


def image_name(prompt: str, seed: int) -> str:
    return f"{hashlib.sha256(prompt.encode()).hexdigest()[:12]}-{seed}.png"


def generate_and_label(generator: Any, detector: Any, classifier: Any, classes: Sequence[str],
                       categories: Iterable[str], seeds: Sequence[int], *, steps: int | None, size: int | None,
                       min_kept: int, save: Callable[[str, int, Image.Image], str],
                       min_confidence: float = SD_MIN_CONFIDENCE, min_side: float = SD_MIN_SIDE,
                       batch_size: int = 8) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(image rows, prompt rows). Each image: generated from its seed, saved (``save`` returns where), kept iff
    exactly one counted person box, and then labelled by the classifier on that box's crop. Each prompt: the
    female share of its kept female/male images, or skipped (bias None) below ``min_kept`` of them."""
    image_rows, prompt_rows = [], []
    for category in categories:
        prompt = prompt_for(category)
        images = generator.generate(prompt, seeds, steps=steps, size=size, batch_size=batch_size)
        detections = detector.detect(images)
        kept = [(i, kept_person(found, min_confidence=min_confidence, min_side=min_side))
                for i, found in enumerate(detections)]
        kept = [(i, box) for i, box in kept if box is not None]
        labels: dict[int, str] = {}
        if kept:
            crops = [images[i].crop((box.x1, box.y1, box.x2, box.y2)) for i, box in kept]
            logits = classifier.predict_logits(crops)
            labels = {i: classes[int(z.argmax())] for (i, _), z in zip(kept, logits, strict=True)}
        for i, (seed, image) in enumerate(zip(seeds, images, strict=True)):
            image_rows.append({"category": category, "prompt": prompt, "seed": int(seed),
                               "image": save(prompt, int(seed), image), "person_boxes": len(detections[i]),
                               "kept": i in labels, "label": labels.get(i)})
        share, n_f, n_m = female_share(list(labels.values()))
        used = n_f + n_m
        prompt_rows.append({"category": category, "prompt": prompt, "generated": len(seeds), "kept": len(kept),
                            "labelled_female_or_male": used,
                            "female_share": share if used >= min_kept else None,
                            "skipped": used < min_kept})
    return image_rows, prompt_rows
