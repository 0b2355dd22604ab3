"""Crime-word co-occurrence and sentiment by perceived group, reduced from every shard's group counts.

Dagster-free: sums the per-shard `group_counts` files (stats/group_sums.py) named by their completion markers,
then computes rates, intervals and small-cell suppression from the sums (group_statistics.py) and returns
publishable tables plus the manifest of what was read. Memory depends on the number of groups and words, not on
the number of shards.

Shards computed with different version sets are never pooled (report_inputs.version_set_groups): by default
a mix raises MixedVersionsError; with ``mixed_versions="per_version_set"`` each table is computed per group.
The version set of a shard's counts includes the version sets of the labels and scores they were made from.
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

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import polars as pl

from laion_audit.audits.crime_review import crime_word_precision
from laion_audit.audits.report_display import display_cell
from laion_audit.audits.report_inputs import MixedVersions, complete_inputs, marked_frames, version_set_groups
from laion_audit.stats.group_statistics import bar_chart_with_ci, markdown_image, per_word_from_sums, rates_from_sums
from laion_audit.stats.group_statistics import sentiment_from_sums, suppress_small_hits
from laion_audit.stats.group_sums import exclude_groups, for_rule, reduce_sums
from laion_audit.shards.store import ShardStore

GROUP_COUNTS = "group_counts"
# Columns computed from negative_hits: hidden with it when it is a small count.
NEGATIVE_DERIVED = ("negative_ratio", "negative_ci_low", "negative_ci_high", "negative_rr")
RATE_DERIVED = ("rate", "ci_low", "ci_high", "rr", "delta_pct", "delta_ci_low", "delta_ci_high")
DELTA_INTERVAL = ("log risk ratio, delta method with the covariance of a group and the baseline that contains it "
                  "(group_statistics.nested_rr_interval)")


class NoAttributedSamplesError(ValueError):
    """No shard has group counts yet."""


def load_sums(store: ShardStore, mixed_versions: MixedVersions = "refuse"
              ) -> Iterator[tuple[str, dict, pl.DataFrame, dict | None]]:
    """(label, manifest, reduced sums, crime-word precision) per version-set group of the shards with complete
    group counts; the precision is that of the crime review the group's scores were filtered with, if any.

    The checks (NoAttributedSamplesError, MixedVersionsError) run on the call, before any file is read; each
    group is reduced only when the iterator reaches it.
    """
    manifest, markers = complete_inputs(store, [(GROUP_COUNTS, True)])
    if not manifest[GROUP_COUNTS]:
        raise NoAttributedSamplesError("no shard has group_counts complete (they need gender_labels, race_labels "
                                       "and alt_text_scores)")
    groups = version_set_groups(manifest, mixed_versions)

    def reduced(group: Mapping[str, Any]) -> tuple[pl.DataFrame, dict | None]:
        chosen = {shard: markers[GROUP_COUNTS][shard] for shard in group[GROUP_COUNTS]}
        settings = (next(iter(chosen.values())).get("recipe") or {}).get("settings") or {}
        return reduce_sums(marked_frames(store, GROUP_COUNTS, True, chosen)), crime_word_precision(settings)

    return ((label, group, *reduced(group)) for label, group in groups)


Tables = Callable[[pl.DataFrame, dict | None], dict[str, pl.DataFrame]]


def _per_group(store: ShardStore, mixed_versions: MixedVersions, settings: dict[str, Any],
               tables: Tables) -> dict[str, Any]:
    by_label = {label: {**tables(sums, precision), "manifest": manifest}
                for label, manifest, sums, precision in load_sums(store, mixed_versions)}
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


def with_precision(words: pl.DataFrame, precision: Mapping[str, Mapping[str, Any]] | None) -> pl.DataFrame:
    """Add the crime review's per-word precision (share of reviewed matches that were about crime) and the
    number of matches reviewed; null for words without a review. Without a review the columns are absent."""
    if precision is None:
        return words
    review = pl.DataFrame({"word": list(precision),
                           "reviewed": [int(v["reviewed"]) for v in precision.values()],
                           "precision": [float(v["precision"]) if v["reviewed"] else None for v in precision.values()]},
                          schema={"word": pl.String, "reviewed": pl.Int64, "precision": pl.Float64})
    return words.join(review, on="word", how="left", maintain_order="left")


def crime_tables(sums: pl.DataFrame, precision: Mapping[str, Mapping[str, Any]] | None = None, *,
                 rule: str = "sample", k_min: int = 10, exclude: Sequence[str] = ("unclear",)) -> dict[str, pl.DataFrame]:
    """The published rates and per-word tables from reduced sums (one version set), with the per-word precision
    of the crime review when the scores were filtered by one."""
    sums = exclude_groups(for_rule(sums, rule), exclude)
    rates = rates_from_sums(sums, "crime", k_min=k_min)
    words = with_precision(per_word_from_sums(sums, k_min=k_min), precision)
    rates = suppress_small_hits(rates, k_min, hits_column="hits", derived_columns=RATE_DERIVED,
                                flag_column="hits_suppressed", across=None)
    words = suppress_small_hits(words, k_min, hits_column="hits", derived_columns=("rate", "delta_pct"),
                                flag_column="hits_suppressed", across="word")
    return {"rates": hide_small_counts(rates), "per_word": hide_small_counts(words)}


def sentiment_tables(sums: pl.DataFrame, *, rule: str = "sample", k_min: int = 10,
                     exclude: Sequence[str] = ("unclear",)) -> dict[str, pl.DataFrame]:
    """The published sentiment table from reduced sums (one version set)."""
    table = sentiment_from_sums(exclude_groups(for_rule(sums, rule), exclude), k_min=k_min)
    table = suppress_small_hits(table, k_min, hits_column="negative_hits", derived_columns=NEGATIVE_DERIVED,
                                flag_column="negative_hits_suppressed", across=None)
    if "hate_share" in table.columns:
        # share x n is a count of samples flagged hateful: the same small-cell rule applies to it.
        table = table.with_columns((pl.col("hate_share") * pl.col("n_samples")).round(0).alias("_hate_hits"))
        table = suppress_small_hits(table, k_min, hits_column="_hate_hits", derived_columns=("hate_share",),
                                    flag_column="hate_share_suppressed", across=None).drop("_hate_hits")
    return {"sentiment": hide_small_counts(table)}


def crime_cooccurrence(
    store: ShardStore, *, rule: str = "sample", k_min: int = 10, exclude: Sequence[str] = ("unclear",),
    mixed_versions: MixedVersions = "refuse",
) -> dict[str, Any]:
    return _per_group(store, mixed_versions,
                      {"rule": rule, "k_min": k_min, "exclude": list(exclude), "delta_interval": DELTA_INTERVAL},
                      lambda sums, precision: crime_tables(sums, precision, rule=rule, k_min=k_min, exclude=exclude))


def sentiment_by_group(
    store: ShardStore, *, rule: str = "sample", k_min: int = 10, exclude: Sequence[str] = ("unclear",),
    mixed_versions: MixedVersions = "refuse",
) -> dict[str, Any]:
    return _per_group(store, mixed_versions, {"rule": rule, "k_min": k_min, "exclude": list(exclude)},
                      lambda sums, _: sentiment_tables(sums, rule=rule, k_min=k_min, exclude=exclude))


def markdown_table(df: pl.DataFrame, columns: Sequence[str], float_digits: int = 3) -> str:
    present = [c for c in columns if c in df.columns]
    lines = ["| " + " | ".join(present) + " |", "|" + "---|" * len(present)]
    for row in df.select(present).iter_rows(named=True):
        lines.append("| " + " | ".join(display_cell(column, row[column], float_digits) for column in present) + " |")
    return "\n".join(lines)


def chart(df: pl.DataFrame, value: str, low: str, high: str, title: str) -> str:
    return markdown_image(bar_chart_with_ci(df, value, low, high, "group", title), title)
