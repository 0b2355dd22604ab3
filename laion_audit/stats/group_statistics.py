"""Per-group rates, relative increases vs baseline, sentiment summaries, small-cell suppression and charts.

Why these definitions (paper_methods §5 says the formulas are "not stated", so we state ours):

* Rate of a group: ``p = hits / n`` with ``n = Σw`` over attributed samples and ``hits = Σw·outcome``
  (weights from :mod:`laion_audit.audits.attribution`; all 1 under the ``sample`` rule).
* 95% CI of a rate: Wilson score interval. Under the ``sample`` rule it uses the unweighted counts. Under the
  ``person`` rule the weights are fractional, so we use the Kish effective sample size
  ``n_eff = (Σw)² / Σw²`` and ``x_eff = p · n_eff``. With all weights 1, ``n_eff = n_samples`` so one formula
  covers both rules exactly.
* Baseline: all samples with ≥1 valid person (weight 1), ``p_base`` = its outcome rate.
* Relative increase ``Δ = (p / p_base − 1) × 100`` (the paper's "+206%" reading). Its 95% CI comes from the
  log (Katz) interval of the risk ratio: ``se(log RR) = sqrt((1−p1)/x1 + (1−p0)/x0)`` with ``x`` the (effective)
  hit counts; null when a hit count is 0. Katz assumes independent groups; a group is a subset of the
  baseline, which makes the interval somewhat wide (conservative) — acceptable for reporting.
* Small-cell suppression: a cell whose ``n_samples`` (unweighted number of attributed samples) is below
  ``k_min`` keeps its row (so the reader sees the group exists) but has hits, rates, CIs and Δ nulled and
  ``suppressed=True``. Suppression keys on the group size, not on the hit count, so a real zero rate in a
  large group is still published.
* Negative-sentiment ratio: share of attributed samples whose alt-text is ``negative`` (VADER threshold set
  upstream), with a Wilson CI; mean VADER compound with a t-based CI (weighted mean, weighted variance with
  the Kish correction, ``df = n_eff − 1``).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy import stats

Z95 = 1.959963984540054
BASELINE_GROUP = "baseline"
BASELINE_AXIS = "baseline"
_KEYS = ["shard", "key"]


# --------------------------------------------------------------------------------------------- intervals
def wilson_interval(hits, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised Wilson score interval; NaN where ``n <= 0``. ``hits``/``n`` may be fractional (effective)."""
    x = np.asarray(hits, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z / denom * np.sqrt(np.clip(p * (1 - p), 0.0, None) / n + z * z / (4 * n * n))
        low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return low, high


def katz_rr_interval(p1, x1, p0, x0, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """95% CI of the risk ratio p1/p0 by the log method; NaN where a hit count is 0."""
    p1, x1, p0, x0 = (np.asarray(a, dtype=float) for a in (p1, x1, p0, x0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (x1 > 0) & (x0 > 0)
        rr = p1 / p0
        se = np.sqrt((1 - p1) / x1 + (1 - p0) / x0)
        low = np.where(ok, np.exp(np.log(rr) - z * se), np.nan)
        high = np.where(ok, np.exp(np.log(rr) + z * se), np.nan)
    return low, high


def _nan_to_null(df: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    return df.with_columns([pl.col(c).fill_nan(None) for c in columns if c in df.columns])


# --------------------------------------------------------------------------------------------- suppression
def suppress_small_cells(
    df: pl.DataFrame, count_column: str, k_min: int, value_columns: Sequence[str]
) -> pl.DataFrame:
    """Null ``value_columns`` where ``count_column < k_min`` and set/extend a ``suppressed`` flag.

    Rows are kept so the published table still lists every group; only the numbers that could identify or
    mislead on tiny cells are withheld. An existing ``suppressed`` column is OR-ed, so the helper composes.
    """
    small = pl.col(count_column).is_null() | (pl.col(count_column) < k_min)
    flag = (small | pl.col("suppressed")) if "suppressed" in df.columns else small
    df = df.with_columns(flag.alias("suppressed"))
    return df.with_columns(
        [pl.when(pl.col("suppressed")).then(None).otherwise(pl.col(c)).alias(c) for c in value_columns]
    )


# --------------------------------------------------------------------------------------------- joins
def _ok_rows(df: pl.DataFrame) -> pl.DataFrame:
    if "status" in df.columns:
        df = df.filter(pl.col("status") == "ok")
    return df


def _baseline_frame(attribution: pl.DataFrame, baseline: pl.DataFrame | None) -> pl.DataFrame:
    """Baseline as attribution rows (group/axis "baseline", weight 1).

    Without an explicit baseline, the distinct samples of the attribution are used; pass
    :func:`laion_audit.audits.attribution.baseline_samples` to include samples whose persons are all excluded.
    """
    keys = (baseline if baseline is not None else attribution).select(_KEYS).unique()
    return keys.with_columns(
        pl.lit(BASELINE_GROUP).alias("group"), pl.lit(BASELINE_AXIS).alias("axis"), pl.lit(1.0).alias("weight")
    ).select(_KEYS + ["group", "axis", "weight"])


def _with_baseline(attribution: pl.DataFrame, baseline: pl.DataFrame | None) -> pl.DataFrame:
    attr = attribution.select(_KEYS + ["group", "axis", pl.col("weight").cast(pl.Float64)])
    return pl.concat([attr, _baseline_frame(attribution, baseline)], how="vertical_relaxed")


# --------------------------------------------------------------------------------------------- rates
def rate_by_group(
    attribution: pl.DataFrame,
    outcomes: pl.DataFrame,
    outcome_column: str,
    *,
    k_min: int = 10,
    baseline: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per-group weighted rate of a boolean outcome with Wilson CI and Δ vs baseline with a Katz CI.

    Samples whose outcome row is missing, non-"ok" or null are dropped (inner join) from both groups and
    baseline, so numerator and denominator always refer to the same scored samples. Output columns: group,
    axis, n_samples, n, n_eff, hits, rate, ci_low, ci_high, p_base, rr, delta_pct, delta_ci_low,
    delta_ci_high, suppressed. The baseline itself is the row with group "baseline".
    """
    out = _ok_rows(outcomes).filter(pl.col(outcome_column).is_not_null()).select(
        _KEYS + [pl.col(outcome_column).cast(pl.Float64).alias("_y")]
    ).unique(subset=_KEYS, keep="first")
    joined = _with_baseline(attribution, baseline).join(out, on=_KEYS, how="inner")
    agg = joined.group_by("group", "axis").agg(
        pl.len().alias("n_samples"),
        pl.col("weight").sum().alias("n"),
        (pl.col("weight").sum() ** 2 / (pl.col("weight") ** 2).sum()).alias("n_eff"),
        (pl.col("weight") * pl.col("_y")).sum().alias("hits"),
    )
    agg = agg.with_columns((pl.col("hits") / pl.col("n")).alias("rate"))
    base = agg.filter(pl.col("group") == BASELINE_GROUP)
    p0 = float(base["rate"][0]) if base.height else float("nan")
    x0 = float(base["hits"][0]) if base.height else 0.0

    rate = agg["rate"].to_numpy().astype(float)
    n_eff = agg["n_eff"].to_numpy().astype(float)
    x_eff = rate * n_eff
    low, high = wilson_interval(x_eff, n_eff)
    with np.errstate(divide="ignore", invalid="ignore"):
        rr = rate / p0 if p0 > 0 else np.full_like(rate, np.nan)
    rr_low, rr_high = katz_rr_interval(rate, x_eff, p0, x0)
    agg = agg.with_columns(
        pl.Series("ci_low", low),
        pl.Series("ci_high", high),
        pl.lit(p0 if not math.isnan(p0) else None, dtype=pl.Float64).alias("p_base"),
        pl.Series("rr", rr),
        pl.Series("delta_pct", (rr - 1.0) * 100.0),
        pl.Series("delta_ci_low", (rr_low - 1.0) * 100.0),
        pl.Series("delta_ci_high", (rr_high - 1.0) * 100.0),
    )
    value_cols = ["hits", "rate", "ci_low", "ci_high", "rr", "delta_pct", "delta_ci_low", "delta_ci_high"]
    agg = _nan_to_null(agg, value_cols)
    agg = suppress_small_cells(agg, "n_samples", k_min, value_cols)
    return _order(agg).select(
        "group", "axis", "n_samples", "n", "n_eff", *value_cols[:4], "p_base", *value_cols[4:], "suppressed"
    )


def _order(df: pl.DataFrame, *extra: str) -> pl.DataFrame:
    """Baseline first, then axes in a stable order, then groups alphabetically (then ``extra`` columns)."""
    rank = {BASELINE_AXIS: 0, "gender": 1, "race": 2, "intersection": 3}
    return df.with_columns(
        pl.col("axis").replace_strict(rank, default=9, return_dtype=pl.Int32).alias("_rank")
    ).sort("_rank", "group", *extra).drop("_rank")


def per_word_breakdown(
    attribution: pl.DataFrame,
    scores: pl.DataFrame,
    *,
    k_min: int = 10,
    baseline: pl.DataFrame | None = None,
    terms_column: str = "crime_terms",
) -> pl.DataFrame:
    """Per group and crime word: weighted count of attributed samples whose alt-text contains the word, rate.

    Shows whether a group's overall Δ is driven by one word (e.g. "terrorist") or spread across the list. Every
    word seen anywhere in the baseline is listed for every group (zero counts included). A word is counted at
    most once per sample. Columns: group, axis, word, n_samples, n, hits, rate, baseline_n, baseline_hits,
    baseline_rate, delta_pct, suppressed (group n_samples < k_min, as in :func:`rate_by_group`).
    """
    sc = _ok_rows(scores).select(_KEYS + [terms_column]).unique(subset=_KEYS, keep="first")
    joined = _with_baseline(attribution, baseline).join(sc, on=_KEYS, how="inner")
    sizes = joined.group_by("group", "axis").agg(pl.len().alias("n_samples"), pl.col("weight").sum().alias("n"))
    words = (
        joined.select(_KEYS + ["group", "axis", "weight", pl.col(terms_column).list.unique().alias("word")])
        .explode("word")
        .filter(pl.col("word").is_not_null())
    )
    vocab = words.filter(pl.col("group") == BASELINE_GROUP).select("word").unique()
    counts = words.group_by("group", "axis", "word").agg(pl.col("weight").sum().alias("hits"))
    grid = sizes.join(vocab, how="cross").join(counts, on=["group", "axis", "word"], how="left")
    grid = grid.with_columns(pl.col("hits").fill_null(0.0)).with_columns(
        (pl.col("hits") / pl.col("n")).alias("rate")
    )
    base = grid.filter(pl.col("group") == BASELINE_GROUP).select(
        "word", pl.col("n").alias("baseline_n"), pl.col("hits").alias("baseline_hits"),
        pl.col("rate").alias("baseline_rate"),
    )
    grid = grid.join(base, on="word", how="left").with_columns(
        pl.when(pl.col("baseline_rate") > 0)
        .then((pl.col("rate") / pl.col("baseline_rate") - 1.0) * 100.0)
        .otherwise(None)
        .alias("delta_pct")
    )
    grid = suppress_small_cells(grid, "n_samples", k_min, ["hits", "rate", "delta_pct"])
    return _order(grid, "word").select(
        "group", "axis", "word", "n_samples", "n", "hits", "rate",
        "baseline_n", "baseline_hits", "baseline_rate", "delta_pct", "suppressed",
    )


def sentiment_by_group(
    attribution: pl.DataFrame,
    scores: pl.DataFrame,
    *,
    k_min: int = 10,
    baseline: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Negative-sentiment ratio (Wilson CI) and mean VADER compound (t CI) per group; hate rates if present.

    The paper's "negative sentiment ratio" (0.40 for Middle Eastern) has no stated formula; we take it as the
    (weighted) share of attributed samples whose alt-text is negative. The ratio to the baseline share is
    also reported (``negative_rr``), since a bare share cannot be judged without the reference. When
    ``scores`` has a ``hate_prob`` column, ``hate_mean`` (mean probability) and ``hate_share`` (share with
    prob ≥ 0.5) are added. Samples with a null ``negative`` are dropped.
    """
    cols = ["negative", "vader_compound"] + (["hate_prob"] if "hate_prob" in scores.columns else [])
    sc = (
        _ok_rows(scores)
        .filter(pl.col("negative").is_not_null())
        .select(_KEYS + cols)
        .unique(subset=_KEYS, keep="first")
    )
    joined = _with_baseline(attribution, baseline).join(sc, on=_KEYS, how="inner")
    w = pl.col("weight")
    c = pl.col("vader_compound")
    cw = pl.when(c.is_not_null()).then(w).otherwise(0.0)
    aggs = [
        pl.len().alias("n_samples"),
        w.sum().alias("n"),
        (w.sum() ** 2 / (w**2).sum()).alias("n_eff"),
        (w * pl.col("negative").cast(pl.Float64)).sum().alias("negative_hits"),
        ((cw * c.fill_null(0.0)).sum() / cw.sum()).alias("compound_mean"),
        cw.sum().alias("_cw"),
        (cw**2).sum().alias("_cw2"),
        (cw * c.fill_null(0.0) ** 2).sum().alias("_cwx2"),
    ]
    if "hate_prob" in cols:
        h = pl.col("hate_prob")
        hw = pl.when(h.is_not_null()).then(w).otherwise(0.0)
        aggs += [
            ((hw * h.fill_null(0.0)).sum() / hw.sum()).alias("hate_mean"),
            ((hw * (h.fill_null(0.0) >= 0.5).cast(pl.Float64)).sum() / hw.sum()).alias("hate_share"),
        ]
    agg = joined.group_by("group", "axis").agg(aggs)
    agg = agg.with_columns((pl.col("negative_hits") / pl.col("n")).alias("negative_ratio"))

    ratio = agg["negative_ratio"].to_numpy().astype(float)
    n_eff = agg["n_eff"].to_numpy().astype(float)
    low, high = wilson_interval(ratio * n_eff, n_eff)

    # weighted t interval: var = Σw(x−m)²/Σw · n_eff/(n_eff−1); se = sqrt(var/n_eff); df = n_eff − 1
    mean = agg["compound_mean"].to_numpy().astype(float)
    sw = agg["_cw"].to_numpy().astype(float)
    sw2 = agg["_cw2"].to_numpy().astype(float)
    swx2 = agg["_cwx2"].to_numpy().astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ne = sw * sw / sw2
        pop_var = np.clip(swx2 / sw - mean * mean, 0.0, None)
        var = pop_var * ne / (ne - 1.0)
        se = np.sqrt(var / ne)
        tq = np.where(ne > 1, stats.t.ppf(0.975, np.where(ne > 1, ne - 1.0, 1.0)), np.nan)
        c_low = np.where(ne > 1, mean - tq * se, np.nan)
        c_high = np.where(ne > 1, mean + tq * se, np.nan)
    base = agg.filter(pl.col("group") == BASELINE_GROUP)
    base_ratio = float(base["negative_ratio"][0]) if base.height else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        rr = ratio / base_ratio if base_ratio > 0 else np.full_like(ratio, np.nan)
    agg = agg.with_columns(
        pl.Series("negative_ci_low", low),
        pl.Series("negative_ci_high", high),
        pl.Series("compound_ci_low", c_low),
        pl.Series("compound_ci_high", c_high),
        pl.Series("negative_rr", rr),
    ).drop("_cw", "_cw2", "_cwx2")
    value_cols = [
        "negative_hits", "negative_ratio", "negative_ci_low", "negative_ci_high", "negative_rr",
        "compound_mean", "compound_ci_low", "compound_ci_high",
    ] + (["hate_mean", "hate_share"] if "hate_prob" in cols else [])
    agg = _nan_to_null(agg, value_cols)
    agg = suppress_small_cells(agg, "n_samples", k_min, value_cols)
    return _order(agg).select("group", "axis", "n_samples", "n", "n_eff", *value_cols, "suppressed")


# --------------------------------------------------------------------------------------------- charts
def bar_chart_with_ci(
    df: pl.DataFrame, value: str, low: str, high: str, label_column: str, title: str
) -> bytes:
    """Horizontal bar chart of ``value`` with [low, high] error bars, as PNG bytes (matplotlib Agg).

    Suppressed rows (``suppressed`` True) and rows with a null value are omitted: a chart must not leak what
    the table withholds. Null CI bounds are drawn without an error bar.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = df
    if "suppressed" in rows.columns:
        rows = rows.filter(~pl.col("suppressed").fill_null(False))
    rows = rows.filter(pl.col(value).is_not_null())
    labels = [str(x) for x in rows[label_column].to_list()]
    vals = rows[value].cast(pl.Float64).to_numpy()
    lo = rows[low].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    hi = rows[high].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    err = np.vstack([np.nan_to_num(vals - lo, nan=0.0), np.nan_to_num(hi - vals, nan=0.0)]).clip(min=0.0)

    fig = Figure(figsize=(7, max(2.0, 0.35 * len(labels) + 1.2)))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(labels))
    if len(labels):
        ax.barh(y, vals, xerr=err, capsize=3, color="#4C72B0", ecolor="black")
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
    else:
        ax.text(0.5, 0.5, "no publishable cells", ha="center", va="center", transform=ax.transAxes)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_title(title)
    ax.set_xlabel(value)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def markdown_image(png_bytes: bytes, alt: str) -> str:
    """Inline a PNG as a markdown data-URI image, for ``dagster.MetadataValue.md``."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png_bytes).decode('ascii')})"
