"""Crime-word co-occurrence and sentiment by perceived group, over every shard that has labels and scores.

Dagster-free: reads the per-shard label and score files, attributes samples to groups, computes the rates
with confidence intervals and small-cell suppression (group_statistics.py), and returns publishable tables
plus the manifest of what was read.

Shards computed with different version sets are never pooled (report_inputs.version_set_groups): by default
a mix raises MixedVersionsError; with ``mixed_versions="per_version_set"`` each table is computed per group.
The result has the single-table shape whenever there is one group, so plain callers need not change:

* one group: ``{<tables>, "manifest": {asset: {shard: entry}}, "settings": {...}}``
* several groups: ``{"by_version_set": {label: {<tables>, "manifest": sub_manifest}}, "manifest": all shards read,
  "settings": {...}}`` — no top-level table, so a caller expecting one fails instead of publishing a mix.

``<tables>`` is ``"rates"`` and ``"per_word"`` for crime_cooccurrence, ``"sentiment"`` for sentiment_by_group.

Small cells never reach a published table: groups with fewer than ``k_min`` samples keep their row with every
number nulled (``suppressed``, :func:`hide_small_counts`), and inside published groups a per-word crime count or
a negative-sentiment count of 1..k_min-1 is nulled with the rates derived from it, together with complementary
cells so it cannot be recovered from a published total (``hits_suppressed`` / ``negative_hits_suppressed``;
group_statistics.suppress_small_hits). The same holds for a group's overall crime count in ``rates``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import polars as pl

from laion_audit.audits.report_inputs import MixedVersions, input_manifest, read_all, version_set_groups
from laion_audit.audits.attribution import attribute_groups, baseline_samples
from laion_audit.stats.group_statistics import bar_chart_with_ci, markdown_image, per_word_breakdown, rate_by_group
from laion_audit.stats.group_statistics import suppress_small_hits
from laion_audit.stats.group_statistics import sentiment_by_group as sentiment_table
from laion_audit.shards.store import ShardStore

INPUTS = (("gender_labels", True), ("race_labels", True), ("alt_text_scores", False))
# Columns computed from negative_hits: hidden with it when it is a small count.
NEGATIVE_DERIVED = ("negative_ratio", "negative_ci_low", "negative_ci_high", "negative_rr")
RATE_DERIVED = ("rate", "ci_low", "ci_high", "rr", "delta_pct", "delta_ci_low", "delta_ci_high")


class NoAttributedSamplesError(ValueError):
    """No shard has labels and alt-text scores yet."""


Inputs = tuple[str, dict[str, Any], pl.DataFrame, pl.DataFrame, pl.DataFrame]


def load_inputs(store: ShardStore, mixed_versions: MixedVersions = "refuse") -> Iterator[Inputs]:
    """(label, manifest, gender, race, scores) per version-set group, over shards that have all three inputs.

    The checks (NoAttributedSamplesError, MixedVersionsError) run on the call, before any table is read; each
    group's shards are read only when the iterator reaches it, so groups are not all held in memory at once.
    """
    manifest = input_manifest(store, INPUTS)
    shards = sorted(set.intersection(*(set(manifest[asset]) for asset, _ in INPUTS)))
    if not shards:
        raise NoAttributedSamplesError("no shard has gender_labels, race_labels and alt_text_scores complete")
    manifest = {asset: {s: v for s, v in by_shard.items() if s in shards} for asset, by_shard in manifest.items()}
    groups = version_set_groups(manifest, mixed_versions)
    return ((label, group, *_read_inputs(store, group)) for label, group in groups)


def _read_inputs(store: ShardStore, manifest: dict[str, Any]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    shards = sorted(manifest["alt_text_scores"])
    label_columns = ["shard", "key", "box_id", "label", "status"]
    gender = pl.from_arrow(read_all(store, "gender_labels", shards, label_columns, restricted=True))
    race = pl.from_arrow(read_all(store, "race_labels", shards, label_columns, restricted=True))
    scores = pl.from_arrow(read_all(store, "alt_text_scores", shards))
    return gender, race, scores


Tables = Callable[[pl.DataFrame, pl.DataFrame, pl.DataFrame], dict[str, pl.DataFrame]]


def _per_group(store: ShardStore, mixed_versions: MixedVersions, settings: dict[str, Any],
               tables: Tables) -> dict[str, Any]:
    by_label = {label: {**tables(gender, race, scores), "manifest": manifest}
                for label, manifest, gender, race, scores in load_inputs(store, mixed_versions)}
    settings = {**settings, "mixed_versions": mixed_versions}
    if len(by_label) == 1:
        return {**next(iter(by_label.values())), "settings": settings}
    merged: dict[str, Any] = {}
    for group in by_label.values():
        for asset, by_shard in group["manifest"].items():
            merged.setdefault(asset, {}).update(by_shard)
    return {"by_version_set": by_label, "manifest": merged, "settings": settings}


def hide_small_counts(df: pl.DataFrame) -> pl.DataFrame:
    """In a published table a suppressed cell shows no count either: "3 people" is itself the small cell."""
    counts = [c for c in ("n_samples", "n", "n_eff", "hits", "negative_hits") if c in df.columns]
    return df.with_columns(
        [pl.when(pl.col("suppressed")).then(None).otherwise(pl.col(c)).alias(c) for c in counts]
    )


def crime_cooccurrence(
    store: ShardStore, *, rule: str = "sample", k_min: int = 10, exclude: Sequence[str] = ("unclear",),
    mixed_versions: MixedVersions = "refuse",
) -> dict[str, Any]:
    def tables(gender: pl.DataFrame, race: pl.DataFrame, scores: pl.DataFrame) -> dict[str, pl.DataFrame]:
        attribution = attribute_groups(gender, race, rule=rule, exclude=exclude)
        baseline = baseline_samples(gender, race)
        rates = rate_by_group(attribution, scores, "crime_match", k_min=k_min, baseline=baseline)
        words = per_word_breakdown(attribution, scores, k_min=k_min, baseline=baseline)
        rates = suppress_small_hits(rates, k_min, hits_column="hits", derived_columns=RATE_DERIVED,
                                    flag_column="hits_suppressed", across=None)
        words = suppress_small_hits(words, k_min, hits_column="hits", derived_columns=("rate", "delta_pct"),
                                    flag_column="hits_suppressed", across="word")
        return {"rates": hide_small_counts(rates), "per_word": hide_small_counts(words)}

    return _per_group(store, mixed_versions, {"rule": rule, "k_min": k_min, "exclude": list(exclude)}, tables)


def sentiment_by_group(
    store: ShardStore, *, rule: str = "sample", k_min: int = 10, exclude: Sequence[str] = ("unclear",),
    mixed_versions: MixedVersions = "refuse",
) -> dict[str, Any]:
    def tables(gender: pl.DataFrame, race: pl.DataFrame, scores: pl.DataFrame) -> dict[str, pl.DataFrame]:
        attribution = attribute_groups(gender, race, rule=rule, exclude=exclude)
        table = sentiment_table(attribution, scores, k_min=k_min, baseline=baseline_samples(gender, race))
        table = suppress_small_hits(table, k_min, hits_column="negative_hits", derived_columns=NEGATIVE_DERIVED,
                                    flag_column="negative_hits_suppressed", across=None)
        if "hate_share" in table.columns:
            # share x n is a count of samples flagged hateful: the same small-cell rule applies to it.
            table = table.with_columns((pl.col("hate_share") * pl.col("n_samples")).round(0).alias("_hate_hits"))
            table = suppress_small_hits(table, k_min, hits_column="_hate_hits", derived_columns=("hate_share",),
                                        flag_column="hate_share_suppressed", across=None).drop("_hate_hits")
        return {"sentiment": hide_small_counts(table)}

    return _per_group(store, mixed_versions, {"rule": rule, "k_min": k_min, "exclude": list(exclude)}, tables)


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
