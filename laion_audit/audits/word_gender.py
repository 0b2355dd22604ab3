"""Word–gender co-occurrence in alt-texts: the dataset side of first-order bias transfer (spec §7).

The paper sums {word: {identity: count}} files but never says how a co-occurrence is counted. Our rules, printed
with every table:

* **Word match**: the word occurs in the sample's alt-text in *word* mode of audits/text_matching.py (lower-cased,
  not touching a word character on either side; multi-word terms as phrases). A sample counts once per word,
  however often the word occurs.
* **Attribution**: a sample is attributed to ``female``/``male`` by audits/attribution.py from the chain's
  perceived-gender labels of its valid persons, under rule ``sample`` (weight 1 for each gender present; a photo
  of a man and a woman counts for both) or ``person`` (weight = share of its valid persons with that label).
  ``unclear``/``mixed`` persons give no group but stay in the ``person`` denominator.
* Only samples whose alt-text was read (``samples`` status ok, non-empty caption) count.
* **Dataset bias** of word w: (n_f − n_m) / (n_f + n_m), n = the weighted counts, for words with
  n_f + n_m ≥ ``min_count`` (paper: 100). The SD comparison uses the female share n_f / (n_f + n_m) = (1 + bias)/2.

Per shard, the counts are additive sums (one row per rule, word list, word and gender): a dataset table is their
sum over shards (:func:`reduce_counts`), so memory depends on words, not shards. Per-shard cells are small
demographic counts and stay in restricted storage; the published table hides every count below k.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl

from laion_audit.audits.attribution import RULES, attribute_groups
from laion_audit.audits.report_inputs import reduce_frames
from laion_audit.audits.text_matching import TermMatcher

GENDERS = ("female", "male")
KEYS = ["rule", "word_list", "word", "gender"]
SCHEMA = {"rule": pl.String, "word_list": pl.String, "word": pl.String, "gender": pl.String,
          "n_samples": pl.Int64, "weighted": pl.Float64}
COUNTING_RULES = (
    "word match: word mode of audits/text_matching.py (lower-cased alt-text, no word character on either side, "
    "multi-word terms as phrases); a sample counts once per word",
    "attribution: audits/attribution.py gender axis from the chain's perceived-gender labels of valid persons; "
    "rule 'sample' = weight 1 per gender present, rule 'person' = share of the sample's valid persons",
    "population: samples with status ok and a non-empty alt-text; labels 'unclear'/'mixed' give no group",
    "dataset bias = (n_f - n_m) / (n_f + n_m) over weighted counts, for words with n_f + n_m >= min_count",
)


def empty_counts() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def word_gender_counts(samples: pl.DataFrame, gender_labels: pl.DataFrame,
                       word_lists: Mapping[str, Sequence[str]]) -> pl.DataFrame:
    """One shard's (or any set of rows') counts: samples (shard, key, caption, status), per-person gender labels
    (shard, key, box_id, label, status) and {list name: words}. Words that occur in no attributed alt-text get
    no row (zero is the reduction's default)."""
    texts = samples.filter((pl.col("status") == "ok") & pl.col("caption").is_not_null()
                           & (pl.col("caption").str.strip_chars() != "")).select("shard", "key", "caption")
    empty_race = gender_labels.clear()
    parts = [empty_counts()]
    for rule in RULES:
        attributed = (attribute_groups(gender_labels, empty_race, rule=rule, exclude=("unclear", "mixed"))
                      .filter((pl.col("axis") == "gender")
                              & pl.col("group").is_in([f"gender:{g}" for g in GENDERS]))
                      .select("shard", "key", pl.col("group").str.strip_prefix("gender:").alias("gender"),
                              "weight"))
        rows = texts.join(attributed, on=["shard", "key"], how="inner")
        if rows.is_empty():
            continue
        for list_name, words in word_lists.items():
            hits = TermMatcher(words, mode="word").match_column(rows["caption"].to_list())
            matched = (rows.with_columns(pl.Series("word", hits, dtype=pl.List(pl.String)))
                       .explode("word").filter(pl.col("word").is_not_null()))
            parts.append(matched.group_by("word", "gender").agg(
                pl.len().cast(pl.Int64).alias("n_samples"), pl.col("weight").sum().alias("weighted"))
                .with_columns(pl.lit(rule).alias("rule"), pl.lit(list_name).alias("word_list"))
                .select(list(SCHEMA)).cast(SCHEMA))
    return pl.concat(parts, how="vertical").sort(KEYS)


def _fold(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.group_by(KEYS).agg(pl.col("n_samples").sum(), pl.col("weighted").sum()).select(list(SCHEMA)).cast(SCHEMA)


def reduce_counts(parts: Iterable[pl.DataFrame] | pl.LazyFrame, batch: int = 256) -> pl.DataFrame:
    """Sum per-shard counts over shards (lazy scan or frames in batches; report_inputs.reduce_frames)."""
    return reduce_frames(parts, SCHEMA, _fold, batch).sort(KEYS)


def dataset_bias(counts: pl.DataFrame, *, rule: str = "sample", min_count: float = 100, k_min: int = 10
                 ) -> dict[str, Any]:
    """Per word list: the words with n_f + n_m >= ``min_count`` and their bias; the published table.

    A count (samples of one gender with the word) in 1..k_min-1 is hidden together with the other gender's
    count, the total that would reveal it, and the bias and female share computed from it (as the group tables
    hide the rates of small hit counts). Words are listed only when n_f + n_m reaches both ``min_count`` and
    ``k_min``: below k, a bias of ±1 would say every sample with the word shows one gender. Words below that are
    not listed, only counted.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    chosen = counts.filter(pl.col("rule") == rule)
    wide = (chosen.pivot(on="gender", index=["word_list", "word"], values=["n_samples", "weighted"],
                         aggregate_function="sum")
            if not chosen.is_empty() else pl.DataFrame(schema={"word_list": pl.String, "word": pl.String}))
    for gender in GENDERS:
        for value, dtype in (("n_samples", pl.Int64), ("weighted", pl.Float64)):
            column = f"{value}_{gender}"
            if column not in wide.columns:
                wide = wide.with_columns(pl.lit(0, dtype=dtype).alias(column))
            wide = wide.with_columns(pl.col(column).fill_null(0).cast(dtype))
    wide = wide.with_columns((pl.col("weighted_female") + pl.col("weighted_male")).alias("n_total"))
    floor = max(min_count, k_min)
    kept = wide.filter(pl.col("n_total") >= floor)
    small = lambda c: (pl.col(c) > 0) & (pl.col(c) < k_min)  # noqa: E731
    table = kept.select(
        "word_list", "word",
        ((pl.col("weighted_female") - pl.col("weighted_male")) / pl.col("n_total")).alias("bias"),
        (pl.col("weighted_female") / pl.col("n_total")).alias("female_share"),
        pl.col("weighted_female").alias("n_female"), pl.col("weighted_male").alias("n_male"), "n_total",
        (small("n_samples_female") | small("n_samples_male")).alias("counts_suppressed"),
    ).with_columns([pl.when(pl.col("counts_suppressed")).then(None).otherwise(pl.col(c)).alias(c)
                    for c in ("n_female", "n_male", "n_total", "bias", "female_share")]).sort("word_list", "word")
    below = wide.filter(pl.col("n_total") < floor).group_by("word_list").agg(pl.len().alias("words"))
    return {"words": table, "below_min_count": dict(below.iter_rows()),
            "settings": {"rule": rule, "min_count": min_count, "k_min": k_min, "listed_from_count": floor,
                         "counting_rules": list(COUNTING_RULES)}}
