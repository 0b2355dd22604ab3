"""Additive sufficient statistics per perceived group: what a dataset table needs from each shard, and no more.

Why: LAION-400M has 41,408 shards. Reading every shard's labels and scores into one process to compute a
dataset table needs memory proportional to the dataset (it failed at 1,000 shards). Every number the crime and
sentiment tables publish is a function of a few sums per group — the number of samples, Σw, Σw², Σw·y and
Σw·y² — and sums add across shards. So each shard writes its sums once (the `group_counts` asset) and a dataset
table sums the shard files (:func:`reduce_sums`), whose size depends on the number of groups and words, not on
the number of shards; adding a shard costs one shard's work.

One row per (rule, axis, group, measure, word). Both attribution rules are computed (they need the same inputs),
and no label is excluded here: excluding a label ("unclear") only removes the groups that name it and never
changes another group's weights (attribution.py keeps excluded persons in the ``person``-rule denominator), so
the table applies ``exclude`` to the reduced sums (:func:`exclude_groups`).

Measures, each over the samples the row-level formulas use (status "ok"; see stats/group_statistics.py):

* ``crime``       — y = crime_match, over samples with a non-null crime_match;
* ``crime_words`` — the per-word denominator: every "ok" sample (y unused);
* ``crime_word``  — y = 1 for samples whose alt-text contains ``word`` (n_samples counts those samples, so
  ``swy`` is the weighted hit count);
* ``negative``    — y = VADER-negative flag, over samples with a non-null flag;
* ``compound``    — y = VADER compound, over those of the ``negative`` samples whose compound is not null;
* ``hate`` / ``hate_share`` — y = hate-speech probability / (probability ≥ 0.5), over those of the ``negative``
  samples that were scored (only when the scores have ``hate_prob``).

The baseline (every sample with a valid person, weight 1) is the group ``baseline`` of axis ``baseline``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import polars as pl

from laion_audit.audits.attribution import RULES, attribute_groups, baseline_samples
from laion_audit.audits.report_inputs import reduce_frames

KEYS = ["rule", "axis", "group", "measure", "word"]
SUMS = ["n_samples", "sw", "sw2", "swy", "swy2"]
SCHEMA = {"rule": pl.String, "axis": pl.String, "group": pl.String, "measure": pl.String, "word": pl.String,
          "n_samples": pl.Int64, "sw": pl.Float64, "sw2": pl.Float64, "swy": pl.Float64, "swy2": pl.Float64}
BASELINE = "baseline"
HATE_THRESHOLD = 0.5
_SAMPLE = ["shard", "key"]


def empty_sums() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def _attribution(gender: pl.DataFrame, race: pl.DataFrame) -> pl.DataFrame:
    """Every rule's attribution plus the baseline, as rows (rule, shard, key, axis, group, weight)."""
    base = baseline_samples(gender, race).select(
        *_SAMPLE, pl.lit(BASELINE).alias("group"), pl.lit(BASELINE).alias("axis"), pl.col("weight"))
    frames = []
    for rule in RULES:
        attributed = attribute_groups(gender, race, rule=rule, exclude=())
        frames.append(pl.concat([attributed.select(*_SAMPLE, "group", "axis", "weight"), base], how="vertical")
                      .with_columns(pl.lit(rule).alias("rule")))
    return pl.concat(frames, how="vertical")


def _sums(joined: pl.DataFrame, measure: str, y: pl.Expr, word: pl.Expr | None = None) -> pl.DataFrame:
    w = pl.col("weight")
    keys = ["rule", "axis", "group"] + (["word"] if word is not None else [])
    frame = joined.with_columns(y.cast(pl.Float64).alias("_y"), *([word.alias("word")] if word is not None else []))
    out = frame.group_by(keys).agg(
        pl.len().cast(pl.Int64).alias("n_samples"), w.sum().alias("sw"), (w * w).sum().alias("sw2"),
        (w * pl.col("_y")).sum().alias("swy"), (w * pl.col("_y") ** 2).sum().alias("swy2"))
    if word is None:
        out = out.with_columns(pl.lit(None, dtype=pl.String).alias("word"))
    return out.with_columns(pl.lit(measure).alias("measure")).select(list(SCHEMA)).cast(SCHEMA)


def group_sums(gender: pl.DataFrame, race: pl.DataFrame, scores: pl.DataFrame) -> pl.DataFrame:
    """The sums of one shard (or of any set of rows: the function does not care where shards begin and end).

    ``gender``/``race``: per-person labels (shard, key, box_id, label, status); ``scores``: alt_text_scores rows.
    """
    return attributed_sums(_attribution(gender, race), scores)


def attributed_sums(attribution: pl.DataFrame, scores: pl.DataFrame) -> pl.DataFrame:
    """Sums for an explicit attribution (rule, shard, key, axis, group, weight; baseline rows included)."""
    if "status" in scores.columns:
        scores = scores.filter(pl.col("status") == "ok")
    optional = [c for c in ("hate_prob",) if c in scores.columns]
    wanted = [c for c in ("crime_match", "crime_terms", "negative", "vader_compound") if c in scores.columns]
    scores = scores.select(*_SAMPLE, *wanted, *optional)
    joined = attribution.select("rule", *_SAMPLE, "axis", "group", pl.col("weight").cast(pl.Float64)).join(
        scores.unique(subset=_SAMPLE, keep="first"), on=_SAMPLE, how="inner")

    parts = []
    if "crime_match" in wanted:
        parts.append(_sums(joined.filter(pl.col("crime_match").is_not_null()), "crime", pl.col("crime_match")))
    if "crime_terms" in wanted:
        words = (joined.select("rule", "axis", "group", "weight", pl.col("crime_terms").list.unique().alias("_word"))
                 .explode("_word").filter(pl.col("_word").is_not_null()))
        parts += [_sums(joined, "crime_words", pl.lit(0.0)),
                  _sums(words, "crime_word", pl.lit(1.0), word=pl.col("_word"))]
    if "negative" in wanted:
        sentiment = joined.filter(pl.col("negative").is_not_null())
        parts.append(_sums(sentiment, "negative", pl.col("negative")))
        if "vader_compound" in wanted:
            parts.append(_sums(sentiment.filter(pl.col("vader_compound").is_not_null()), "compound",
                               pl.col("vader_compound")))
        if optional:
            hated = sentiment.filter(pl.col("hate_prob").is_not_null())
            parts += [_sums(hated, "hate", pl.col("hate_prob")),
                      _sums(hated, "hate_share", pl.col("hate_prob") >= HATE_THRESHOLD)]
    return pl.concat([empty_sums(), *parts], how="vertical").sort(KEYS, nulls_last=True)


def reduce_sums(parts: Iterable[pl.DataFrame] | pl.LazyFrame, batch: int = 256) -> pl.DataFrame:
    """Sum per-shard sums over shards (a lazy scan or frames in batches; see report_inputs.reduce_frames)."""
    return reduce_frames(parts, SCHEMA, _sum_lazy, batch).sort(KEYS, nulls_last=True)


def _sum_lazy(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.group_by(KEYS).agg([pl.col(c).sum() for c in SUMS]).select(list(SCHEMA)).cast(SCHEMA)


def scan_sums(paths: Sequence[str]) -> pl.LazyFrame:
    """A lazy scan over shard files named by their completion markers (never a glob: a glob would pick up a
    file still being written)."""
    return pl.scan_parquet(list(paths)).select(list(SCHEMA)).cast(SCHEMA)


def exclude_groups(sums: pl.DataFrame, exclude: Sequence[str]) -> pl.DataFrame:
    """Drop groups that name an excluded label on any axis ("race:black&gender:unclear" goes with "unclear")."""
    if not exclude:
        return sums
    labels = pl.col("group").str.split("&").list.eval(pl.element().str.split_exact(":", 1).struct.field("field_1"))
    return sums.filter(~labels.list.eval(pl.element().is_in(list(exclude))).list.any() | (pl.col("axis") == BASELINE))


def for_rule(sums: pl.DataFrame, rule: str) -> pl.DataFrame:
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    return sums.filter(pl.col("rule") == rule)
