"""Human review of crime-word matches: a seeded sample per word to label, and per-word precision from the labels.

Why: on real LAION alt-texts only about a third of the captions the crime list matches are about crime (titles,
product names, places, costumes make up the rest). Exclusion phrases remove the known patterns; a review
measures what is left, word by word, so a table can show each word's precision and ``min_precision`` can drop
the words that mostly mean something else.

Sampling is order-independent and streaming: each matched (shard, key) gets a seeded hash, and a word keeps
the ``per_word`` rows with the smallest hashes. The same store and seed give the same sample whatever order
the shards are read in, memory is bounded by words × per_word, and adding shards only adds candidates.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REVIEW_COLUMNS = ("word", "shard", "key", "caption", "crime_terms", "is_crime")
_YES = {"yes", "y", "1", "true"}
_NO = {"no", "n", "0", "false"}


def _rank(seed: int, shard: str, key: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{shard}\x00{key}".encode(), digest_size=16).digest()


def sample_matches(
    rows: Iterable[tuple[str, str, list[str]]], per_word: int, seed: int = 0
) -> dict[str, list[tuple[str, str]]]:
    """Per crime word, up to ``per_word`` (shard, key) of the rows it matched, chosen by a seeded hash.

    ``rows``: (shard, key, crime_terms) for every scored row (rows without terms are skipped).
    """
    heaps: dict[str, list[tuple[bytes, str, str]]] = {}
    for shard, key, terms in rows:
        if not terms:
            continue
        rank = _rank(seed, shard, key)
        for word in set(terms):
            heap = heaps.setdefault(word, [])
            item = (_invert(rank), shard, key)  # a max-heap on rank through inverted bytes
            if len(heap) < per_word:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    return {word: sorted((shard, key) for _, shard, key in heap) for word, heap in sorted(heaps.items())}


def _invert(rank: bytes) -> bytes:
    return bytes(255 - b for b in rank)


def _scored_rows(store, shards: Iterable[str]) -> Iterable[tuple[str, str, list[str]]]:
    for shard in shards:
        table = store.read_table("alt_text_scores", shard, columns=["key", "crime_terms"])
        for key, terms in zip(table.column("key").to_pylist(), table.column("crime_terms").to_pylist()):
            yield shard, key, terms or []


def write_review_sample(store, out: str | Path, per_word: int = 20, seed: int = 0) -> dict[str, int]:
    """Write the review CSV (``REVIEW_COLUMNS``, ``is_crime`` empty) for every complete alt_text_scores shard.

    Captions come from the ``samples`` shards of the same store. Returns rows written per word. The file is
    written to a temporary name and renamed, so a crash never leaves a half-written review.
    """
    if per_word < 1:
        raise ValueError(f"per_word must be at least 1, got {per_word}")
    shards = sorted(store.complete_shards("alt_text_scores"))
    if not shards:
        raise FileNotFoundError("no complete alt_text_scores shard in the store: materialize alt_text_scores first")
    chosen = sample_matches(_scored_rows(store, shards), per_word, seed)
    wanted: dict[str, set[str]] = {}
    for picks in chosen.values():
        for shard, key in picks:
            wanted.setdefault(shard, set()).add(key)
    captions: dict[tuple[str, str], tuple[str | None, list[str]]] = {}
    for shard, keys in sorted(wanted.items()):
        samples = store.read_table("samples", shard, columns=["key", "caption"])
        scores = store.read_table("alt_text_scores", shard, columns=["key", "crime_terms"])
        terms = dict(zip(scores.column("key").to_pylist(), scores.column("crime_terms").to_pylist()))
        for key, caption in zip(samples.column("key").to_pylist(), samples.column("caption").to_pylist()):
            if key in keys:
                captions[(shard, key)] = (caption, terms.get(key) or [])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", newline="", encoding="utf-8", dir=out.parent,
                                         prefix=f".{out.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            writer = csv.writer(handle)
            writer.writerow(REVIEW_COLUMNS)
            for word, picks in chosen.items():
                for shard, key in picks:
                    caption, terms = captions.get((shard, key), (None, []))
                    writer.writerow([word, shard, key, caption or "", "; ".join(terms), ""])
        os.replace(handle.name, out)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return {word: len(picks) for word, picks in chosen.items()}


def word_precision(review_path: str | Path) -> dict[str, dict[str, Any]]:
    """Per word of a filled review: {"reviewed": n, "crime": k, "precision": k / n}.

    ``is_crime`` accepts yes/no, y/n, 1/0, true/false (any case); blank cells are not reviewed and are left
    out. Words with no filled row are absent from the result. Any other value is an error naming the line.
    """
    path = Path(review_path)
    counts: dict[str, list[int]] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"word", "is_crime"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: review file lacks column(s) {sorted(missing)}")
        for row in reader:
            value = (row["is_crime"] or "").strip().lower()
            if not value:
                continue
            if value not in _YES and value not in _NO:
                raise ValueError(f"{path}, line {reader.line_num}: is_crime must be yes/no/1/0/true/false or "
                                 f"blank, got {row['is_crime']!r} (word {row['word']!r})")
            word = (row["word"] or "").strip().lower()
            if not word:
                raise ValueError(f"{path}, line {reader.line_num}: a reviewed row without a word")
            tally = counts.setdefault(word, [0, 0])
            tally[0] += 1
            tally[1] += value in _YES
    return {word: {"reviewed": n, "crime": k, "precision": k / n} for word, (n, k) in sorted(counts.items())}


def review_sha256(review_path: str | Path) -> str:
    """The review file's content hash, for the recipe: editing the labels must re-compute the scores."""
    return hashlib.sha256(Path(review_path).read_bytes()).hexdigest()


def precise_words(
    words: Iterable[str], precision: Mapping[str, Mapping[str, Any]], min_precision: float
) -> tuple[list[str], list[str]]:
    """(kept, dropped): a word is dropped when its reviewed precision is below ``min_precision``.

    Words with no review are kept: no evidence is not evidence of a false hit, and dropping them would let an
    incomplete review silently shrink the list. Order is preserved.
    """
    kept, dropped = [], []
    for word in words:
        review = precision.get(word)
        (dropped if review is not None and review["precision"] < min_precision else kept).append(word)
    return kept, dropped


def crime_word_precision(recipe_settings: Mapping[str, Any]) -> dict[str, dict[str, Any]] | None:
    """Per-word precision for a crime table, from the ``crime_review`` setting of an alt_text_scores recipe.

    None when the scores were made without a review. The file must still hash to what the recipe recorded:
    a review edited since would describe other labels than the ones that filtered the words.
    """
    review = recipe_settings.get("crime_review")
    if not review:
        return None
    if review_sha256(review["path"]) != review["sha256"]:
        raise ValueError(f"crime review {review['path']} changed since the scores were made (sha256 differs); "
                         "re-materialize alt_text_scores or restore the file")
    return word_precision(review["path"])
