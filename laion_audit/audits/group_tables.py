"""Crime-word co-occurrence and sentiment by perceived group, over every shard that has labels and scores.

Dagster-free: reads the per-shard label and score files, attributes samples to groups, computes the rates
with confidence intervals and small-cell suppression (group_statistics.py), and returns publishable tables
plus the manifest of what was read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from laion_audit.audits.report_inputs import input_manifest, read_all
from laion_audit.audits.attribution import attribute_groups, baseline_samples
from laion_audit.stats.group_statistics import bar_chart_with_ci, markdown_image, per_word_breakdown, rate_by_group
from laion_audit.stats.group_statistics import sentiment_by_group as sentiment_table
from laion_audit.shards.store import ShardStore

INPUTS = (("gender_labels", True), ("race_labels", True), ("alt_text_scores", False))


class NoAttributedSamplesError(ValueError):
    """No shard has labels and alt-text scores yet."""


def load_inputs(store: ShardStore) -> tuple[dict[str, Any], pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    manifest = input_manifest(store, INPUTS)
    shards = sorted(set.intersection(*(set(manifest[asset]) for asset, _ in INPUTS)))
    if not shards:
        raise NoAttributedSamplesError("no shard has gender_labels, race_labels and alt_text_scores complete")
    manifest = {asset: {s: v for s, v in by_shard.items() if s in shards} for asset, by_shard in manifest.items()}
    label_columns = ["shard", "key", "box_id", "label", "status"]
    gender = pl.from_arrow(read_all(store, "gender_labels", shards, label_columns, restricted=True))
    race = pl.from_arrow(read_all(store, "race_labels", shards, label_columns, restricted=True))
    scores = pl.from_arrow(read_all(store, "alt_text_scores", shards))
    return manifest, gender, race, scores


def hide_small_counts(df: pl.DataFrame) -> pl.DataFrame:
    """In a published table a suppressed cell shows no count either: "3 people" is itself the small cell."""
    counts = [c for c in ("n_samples", "n", "n_eff", "hits", "negative_hits") if c in df.columns]
    return df.with_columns(
        [pl.when(pl.col("suppressed")).then(None).otherwise(pl.col(c)).alias(c) for c in counts]
    )


def crime_cooccurrence(
    store: ShardStore, *, rule: str = "sample", k_min: int = 10, exclude: Sequence[str] = ("unclear",)
) -> dict[str, Any]:
    manifest, gender, race, scores = load_inputs(store)
    attribution = attribute_groups(gender, race, rule=rule, exclude=exclude)
    baseline = baseline_samples(gender, race)
    rates = rate_by_group(attribution, scores, "crime_match", k_min=k_min, baseline=baseline)
    words = per_word_breakdown(attribution, scores, k_min=k_min, baseline=baseline)
    return {"rates": hide_small_counts(rates), "per_word": hide_small_counts(words), "manifest": manifest,
            "settings": {"rule": rule, "k_min": k_min, "exclude": list(exclude)}}


def sentiment_by_group(
    store: ShardStore, *, rule: str = "sample", k_min: int = 10, exclude: Sequence[str] = ("unclear",)
) -> dict[str, Any]:
    manifest, gender, race, scores = load_inputs(store)
    attribution = attribute_groups(gender, race, rule=rule, exclude=exclude)
    table = sentiment_table(attribution, scores, k_min=k_min, baseline=baseline_samples(gender, race))
    return {"sentiment": hide_small_counts(table), "manifest": manifest,
            "settings": {"rule": rule, "k_min": k_min, "exclude": list(exclude)}}


def markdown_table(df: pl.DataFrame, columns: Sequence[str], float_digits: int = 3) -> str:
    present = [c for c in columns if c in df.columns]
    lines = ["| " + " | ".join(present) + " |", "|" + "---|" * len(present)]
    for row in df.select(present).iter_rows(named=True):
        cells = []
        for column in present:
            value = row[column]
            cells.append("–" if value is None else f"{value:.{float_digits}f}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(df: pl.DataFrame, value: str, low: str, high: str, title: str) -> str:
    return markdown_image(bar_chart_with_ci(df, value, low, high, "group", title), title)
