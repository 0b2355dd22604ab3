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
  log risk ratio by the delta method with the covariance of a group and the baseline that contains it
  (:func:`nested_rr_interval`); null when a hit count is 0. Katz's independent-groups interval would be 1.1x to
  2.6x too wide here, with coverage near 1 instead of 0.95.
* Every table is computed from additive sums (stats/group_sums.py), so the same functions serve one shard,
  all rows at once, or 41,408 shards reduced by addition.
* Small-cell suppression: a cell whose ``n_samples`` (unweighted number of attributed samples) is below
  ``k_min`` keeps its row (so the reader sees the group exists) but has hits, rates, CIs and Δ nulled and
  ``suppressed=True``. Suppression keys on the group size, not on the hit count, so a real zero rate in a
  large group is still published.
* Small hit counts inside published groups (:func:`suppress_small_hits`, applied when tables are published):
  a per-word crime count or a negative-sentiment count with ``0 < hits < k_min`` is nulled with its derived
  rates and flagged (``hits_suppressed`` / ``negative_hits_suppressed``), plus complementary suppression so
  it cannot be recovered from a published total (:func:`complementary_suppression`). Zero counts stay
  published: a zero is nobody. Weighted hits (``person`` rule, weights ≤ 1) never exceed the unweighted number
  of samples, so testing the weighted value errs on the side of hiding.
* Confusion matrices of the demographic classifiers go through :func:`suppress_matrix` (every cell < k,
  zeros included, plus complementary suppression along rows and columns) before they are published.
* Negative-sentiment ratio: share of attributed samples whose alt-text is ``negative`` (VADER threshold set
  upstream), with a Wilson CI; mean VADER compound with a t-based CI (weighted mean, weighted variance with
  the Kish correction, ``df = n_eff − 1``).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np
import polars as pl

from laion_audit.stats.group_sums import SUMS, attributed_sums

Z95 = 1.959963984540054
# Smallest count of people a published demographic cell may show; smaller cells stay in restricted storage.
K_MIN = 10
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


def nested_rr_interval(p1, x1, p0, x0, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """95% CI of p1/p0 when group 1 is a subset of group 0 (a perceived group inside its own baseline).

    Delta method on log RR with the covariance the overlap creates: the group's samples are also baseline
    samples, so Cov(p̂1, p̂0) = p1(1−p1)/n0 and

        Var(log RR) = (1−p1)/x1 + (1−p0)/x0 − 2(1−p1)/x0

    with ``x`` the (effective) hit counts. Katz's interval (:func:`katz_rr_interval`) drops the last term and
    is too wide — 1.09x at a 5% share of the baseline, 2.55x at 60%, with coverage near 1 — which hides real
    differences. Weighted (``person`` rule) hits use the Kish effective counts; the covariance holds for
    weights ≤ 1 as well, since Σw·p(1−p)/(n1·n0) is again p(1−p)/n0. NaN where a hit count is 0.
    """
    p1, x1, p0, x0 = (np.asarray(a, dtype=float) for a in (p1, x1, p0, x0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (x1 > 0) & (x0 > 0)
        rr = p1 / p0
        var = np.clip((1 - p1) / x1 + (1 - p0) / x0 - 2 * (1 - p1) / x0, 0.0, None)
        se = np.sqrt(var)
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


def complementary_suppression(
    values: Mapping[Hashable, float | None], hidden: Iterable[Hashable], lines: Iterable[Sequence[Hashable]]
) -> set[Hashable]:
    """Grow ``hidden`` until no line has exactly one hidden cell; return the hidden cells.

    A *line* is a set of cells whose sum is known from a published total (a matrix row or column, the words
    of one group, the groups of one axis, an intersection margin). With one hidden cell the total gives it
    away, so the smallest visible cell of that line is hidden too: preferring a non-zero cell (hiding a zero
    beside a small cell leaves the small value as the line's residue), then the smaller value, then the
    earlier position. A None value counts as hidden. Hiding a cell can leave another line with a single
    hidden cell, so the passes repeat until nothing changes. A one-cell line cannot be protected this way
    (there is nothing else in it to hide); callers leave such lines out and say so.

    This is the simple "at least two hidden cells per line" rule, not an optimal (fewest cells) or
    interval-proof solution of linked tables; it errs towards hiding more.
    """
    hidden = set(hidden) | {cell for cell, value in values.items() if value is None}
    lines = [list(line) for line in lines]
    changed = True
    while changed:
        changed = False
        for line in lines:
            if sum(cell in hidden for cell in line) != 1:
                continue
            visible = [(position, cell) for position, cell in enumerate(line) if cell not in hidden]
            if not visible:
                continue
            _, pick = min(visible, key=lambda item: (values[item[1]] <= 0, values[item[1]], item[0]))
            hidden.add(pick)
            changed = True
    return hidden


def _is_small(value: float | None, k_min: int, suppress_zeros: bool) -> bool:
    return value is None or (value < k_min and (suppress_zeros or value > 0))


def suppress_matrix(
    matrix: Sequence[Sequence[float | None]], k_min: int = K_MIN, *, suppress_zeros: bool = True
) -> list[list[float | None]]:
    """A copy of ``matrix`` with every cell below ``k_min`` (and complementary cells) replaced by None.

    Meant for confusion matrices (rows = true class, columns = predicted class): a cell counts people of one
    demographic class, and row/column totals (class supports, prediction counts) may be known, so after the
    primary suppression every row and every column with exactly one hidden cell gets a second one
    (:func:`complementary_suppression`). Zeros are suppressed too by default: a reader then cannot tell a
    hidden 0 from a hidden 3, so the zeros of a sparse matrix protect the small cells beside them for free
    (with ``suppress_zeros=False`` zeros are published and serve only as last-resort complements). None in
    the input counts as already hidden. Example (k=10): ``[[50, 3], [12, 40]]`` hides 3 (primary), then 50
    (its row), 40 (its column) and 12 (the first column) -- a 2x2 table with one small cell hides everything.
    """
    cells = {(i, j): value for i, row in enumerate(matrix) for j, value in enumerate(row)}
    primary = {cell for cell, value in cells.items() if _is_small(value, k_min, suppress_zeros)}
    width = max((len(row) for row in matrix), default=0)
    rows = [[(i, j) for j in range(len(row))] for i, row in enumerate(matrix)]
    columns = [[(i, j) for i in range(len(matrix)) if j < len(matrix[i])] for j in range(width)]
    hidden = complementary_suppression(cells, primary, rows + columns)
    return [[None if (i, j) in hidden else value for j, value in enumerate(row)] for i, row in enumerate(matrix)]


def suppress_small_hits(
    df: pl.DataFrame,
    k_min: int = K_MIN,
    *,
    hits_column: str = "hits",
    derived_columns: Sequence[str] = ("rate", "delta_pct"),
    flag_column: str = "hits_suppressed",
    across: str | None = "word",
    total_column: str = "n_samples",
) -> pl.DataFrame:
    """Null hit counts with ``0 < hits < k_min`` inside published groups, their derived columns, and complements.

    ``df`` has ``group`` and ``axis`` columns and one row per group (``across=None``, e.g. the sentiment table)
    or per group and ``across`` value (``across="word"``, the per-word table). The baseline row(s) are not a
    demographic cell and stay as they are. A hits value that is already null (group below ``k_min``) counts as
    hidden. Complementary suppression (:func:`complementary_suppression`) runs over these lines, each of which
    sums to something published:

    * per group, all its ``across`` values (their total is the group's crime hits in the rates table);
    * per axis and ``across`` value, all groups of that axis (their total is the baseline row);
    * per intersection margin, e.g. ``race:black`` and every ``race:black&gender:*`` group, per ``across`` value
      (the margin group's own count is the total of its intersections).

    Under the ``sample`` rule groups overlap, so these sums are only approximate and the rule hides somewhat
    more than strictly needed. Not covered: an axis with a single group (its one cell equals the baseline, which
    stays published; real data has several groups per axis). A count whose complement ``total_column - hits`` is
    between 0 and ``k_min`` is a small cell too (hidden as primary). ``flag_column`` is True where this function
    hid the value (not where the group itself was suppressed: that is ``suppressed``); the row stays, the values
    are null.
    """
    rows = df.with_row_index("_row")
    people = rows.filter(pl.col("group") != BASELINE_GROUP)
    value_of: dict[Hashable, float | None] = {}
    row_of: dict[Hashable, int] = {}
    cells_by_group: dict[str, list[Hashable]] = {}
    cells_by_line: dict[Hashable, list[Hashable]] = {}
    axis_of: dict[str, str] = {}
    columns = ["_row", "group", "axis", hits_column] + ([across] if across else [])
    for record in people.select(columns).sort("axis", "group", *([across] if across else [])).iter_rows(named=True):
        slot = record[across] if across else None
        cell = (record["group"], slot)
        value_of[cell], row_of[cell] = record[hits_column], record["_row"]
        cells_by_group.setdefault(record["group"], []).append(cell)
        cells_by_line.setdefault(("axis", record["axis"], slot), []).append(cell)
        axis_of[record["group"]] = record["axis"]
    for group, cells in cells_by_group.items():
        if axis_of[group] != "intersection":
            continue
        for part in group.split("&"):
            for cell in cells:
                line = cells_by_line.setdefault(("margin", part, cell[1]), [])
                if not line and (part, cell[1]) in value_of:
                    line.append((part, cell[1]))
                line.append(cell)
    lines = list(cells_by_line.values()) + (list(cells_by_group.values()) if across else [])
    # A small cell is also the complement: with n published, hits of n - 3 reveal the 3 samples without a hit.
    totals = dict(zip(
        [(r["group"], r[across] if across else None) for r in people.iter_rows(named=True)],
        people[total_column].to_list() if total_column in people.columns else [None] * people.height, strict=True))
    primary = {cell for cell, value in value_of.items() if value is not None
               and (0 < value < k_min or (totals.get(cell) is not None and 0 < totals[cell] - value < k_min))}
    already = {cell for cell, value in value_of.items() if value is None}
    hidden = complementary_suppression(value_of, primary | already, [line for line in lines if len(line) > 1])
    hidden_rows = sorted(row_of[cell] for cell in hidden - already)
    flag = pl.col("_row").is_in(pl.Series(hidden_rows, dtype=pl.UInt32))
    rows = rows.with_columns(flag.alias(flag_column))
    nulled = [hits_column, *(c for c in derived_columns if c in rows.columns)]
    rows = rows.with_columns(
        [pl.when(pl.col(flag_column)).then(None).otherwise(pl.col(c)).alias(c) for c in nulled]
    )
    return rows.drop("_row")


# --------------------------------------------------------------------------------------------- tables from sums
def _measure(sums: pl.DataFrame, measure: str) -> pl.DataFrame:
    return sums.filter(pl.col("measure") == measure)


def _baseline_sums(attribution: pl.DataFrame, baseline: pl.DataFrame | None) -> pl.DataFrame:
    """Attribution rows (rule "given") plus the baseline as group/axis "baseline", weight 1.

    Without an explicit baseline, the distinct samples of the attribution are used; pass
    :func:`laion_audit.audits.attribution.baseline_samples` to include samples whose persons are all excluded.
    """
    keys = (baseline if baseline is not None else attribution).select(_KEYS).unique()
    base = keys.with_columns(pl.lit(BASELINE_GROUP).alias("group"), pl.lit(BASELINE_AXIS).alias("axis"),
                             pl.lit(1.0).alias("weight"))
    rows = pl.concat([attribution.select(_KEYS + ["group", "axis", pl.col("weight").cast(pl.Float64)]),
                      base.select(_KEYS + ["group", "axis", "weight"])], how="vertical_relaxed")
    return rows.with_columns(pl.lit("given").alias("rule"))


def rates_from_sums(sums: pl.DataFrame, measure: str = "crime", *, k_min: int = 10) -> pl.DataFrame:
    """Per-group weighted rate of a boolean outcome with Wilson CI and Δ vs baseline, from one rule's sums.

    Output columns: group, axis, n_samples, n, n_eff, hits, rate, ci_low, ci_high, p_base, rr, delta_pct,
    delta_ci_low, delta_ci_high, suppressed; the baseline itself is the row with group "baseline". The Δ interval
    is :func:`nested_rr_interval` (a group is part of its own baseline).
    """
    agg = _measure(sums, measure).select(
        "group", "axis", "n_samples", pl.col("sw").alias("n"), (pl.col("sw") ** 2 / pl.col("sw2")).alias("n_eff"),
        pl.col("swy").alias("hits"), (pl.col("swy") / pl.col("sw")).alias("rate"))
    base = agg.filter(pl.col("group") == BASELINE_GROUP)
    p0 = float(base["rate"][0]) if base.height else float("nan")
    x0 = float(base["hits"][0]) if base.height else 0.0

    rate = agg["rate"].to_numpy().astype(float)
    n_eff = agg["n_eff"].to_numpy().astype(float)
    x_eff = rate * n_eff
    low, high = wilson_interval(x_eff, n_eff)
    with np.errstate(divide="ignore", invalid="ignore"):
        rr = rate / p0 if p0 > 0 else np.full_like(rate, np.nan)
    rr_low, rr_high = nested_rr_interval(rate, x_eff, p0, x0)
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


def rate_by_group(
    attribution: pl.DataFrame,
    outcomes: pl.DataFrame,
    outcome_column: str,
    *,
    k_min: int = 10,
    baseline: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """:func:`rates_from_sums` over rows: samples whose outcome row is missing, non-"ok" or null are dropped
    from both groups and baseline, so numerator and denominator refer to the same scored samples."""
    scored = outcomes.select(*_KEYS, *(["status"] if "status" in outcomes.columns else []),
                             pl.col(outcome_column).alias("crime_match"))
    return rates_from_sums(attributed_sums(_baseline_sums(attribution, baseline), scored), "crime", k_min=k_min)


def _order(df: pl.DataFrame, *extra: str) -> pl.DataFrame:
    """Baseline first, then axes in a stable order, then groups alphabetically (then ``extra`` columns)."""
    rank = {BASELINE_AXIS: 0, "gender": 1, "race": 2, "intersection": 3}
    return df.with_columns(
        pl.col("axis").replace_strict(rank, default=9, return_dtype=pl.Int32).alias("_rank")
    ).sort("_rank", "group", *extra).drop("_rank")


def per_word_from_sums(sums: pl.DataFrame, *, k_min: int = 10) -> pl.DataFrame:
    """Per group and crime word: weighted count of attributed samples whose alt-text contains the word, rate.

    Shows whether a group's overall Δ is driven by one word (e.g. "terrorist") or spread across the list. Every
    word seen anywhere in the baseline is listed for every group (zero counts included). A word is counted at
    most once per sample. Columns: group, axis, word, n_samples, n, hits, rate, baseline_n, baseline_hits,
    baseline_rate, delta_pct, suppressed (group n_samples < k_min, as in :func:`rates_from_sums`).
    """
    sizes = _measure(sums, "crime_words").select("group", "axis", "n_samples", pl.col("sw").alias("n"))
    counts = _measure(sums, "crime_word").select("group", "axis", "word", pl.col("swy").alias("hits"))
    vocab = counts.filter(pl.col("group") == BASELINE_GROUP).select("word").unique()
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


def per_word_breakdown(
    attribution: pl.DataFrame,
    scores: pl.DataFrame,
    *,
    k_min: int = 10,
    baseline: pl.DataFrame | None = None,
    terms_column: str = "crime_terms",
) -> pl.DataFrame:
    """:func:`per_word_from_sums` over rows."""
    rows = scores.select(*_KEYS, *(["status"] if "status" in scores.columns else []),
                         pl.col(terms_column).alias("crime_terms"))
    return per_word_from_sums(attributed_sums(_baseline_sums(attribution, baseline), rows), k_min=k_min)


def _weighted_t_interval(sw: np.ndarray, sw2: np.ndarray, swx: np.ndarray, swx2: np.ndarray):
    """Weighted mean with a t interval: var = Σw(x−m)²/Σw · n_eff/(n_eff−1); se = sqrt(var/n_eff); df = n_eff − 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = swx / sw
        ne = sw * sw / sw2
        pop_var = np.clip(swx2 / sw - mean * mean, 0.0, None)
        var = pop_var * ne / (ne - 1.0)
        se = np.sqrt(var / ne)
        from scipy import stats  # here, not at the top: scipy.stats is 0.5 s of every run's start-up

        tq = np.where(ne > 1, stats.t.ppf(0.975, np.where(ne > 1, ne - 1.0, 1.0)), np.nan)
        return mean, np.where(ne > 1, mean - tq * se, np.nan), np.where(ne > 1, mean + tq * se, np.nan)


def sentiment_from_sums(sums: pl.DataFrame, *, k_min: int = 10) -> pl.DataFrame:
    """Negative-sentiment ratio (Wilson CI) and mean VADER compound (t CI) per group; hate rates if scored.

    The paper's "negative sentiment ratio" (0.40 for Middle Eastern) has no stated formula; we take it as the
    (weighted) share of attributed samples whose alt-text is negative. The ratio to the baseline share is
    also reported (``negative_rr``), since a bare share cannot be judged without the reference. When the sums
    have hate-speech measures, ``hate_mean`` (mean probability) and ``hate_share`` (share with prob ≥ 0.5) are
    added.
    """
    agg = _measure(sums, "negative").select(
        "group", "axis", "n_samples", pl.col("sw").alias("n"), (pl.col("sw") ** 2 / pl.col("sw2")).alias("n_eff"),
        pl.col("swy").alias("negative_hits"), (pl.col("swy") / pl.col("sw")).alias("negative_ratio"))
    compound = _measure(sums, "compound").select("group", "axis", *(pl.col(c).alias(f"_c_{c}") for c in SUMS))
    agg = agg.join(compound, on=["group", "axis"], how="left")
    has_hate = _measure(sums, "hate").height > 0
    if has_hate:
        for measure, column in (("hate", "hate_mean"), ("hate_share", "hate_share")):
            agg = agg.join(_measure(sums, measure).select("group", "axis", (pl.col("swy") / pl.col("sw")).alias(column)),
                           on=["group", "axis"], how="left")

    ratio = agg["negative_ratio"].to_numpy().astype(float)
    n_eff = agg["n_eff"].to_numpy().astype(float)
    low, high = wilson_interval(ratio * n_eff, n_eff)
    mean, c_low, c_high = _weighted_t_interval(*(agg[f"_c_{c}"].fill_null(0.0).to_numpy().astype(float)
                                                 for c in ("sw", "sw2", "swy", "swy2")))
    base = agg.filter(pl.col("group") == BASELINE_GROUP)
    base_ratio = float(base["negative_ratio"][0]) if base.height else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        rr = ratio / base_ratio if base_ratio > 0 else np.full_like(ratio, np.nan)
    agg = agg.with_columns(
        pl.Series("negative_ci_low", low),
        pl.Series("negative_ci_high", high),
        pl.Series("compound_mean", mean),
        pl.Series("compound_ci_low", c_low),
        pl.Series("compound_ci_high", c_high),
        pl.Series("negative_rr", rr),
    )
    value_cols = [
        "negative_hits", "negative_ratio", "negative_ci_low", "negative_ci_high", "negative_rr",
        "compound_mean", "compound_ci_low", "compound_ci_high",
    ] + (["hate_mean", "hate_share"] if has_hate else [])
    agg = _nan_to_null(agg, value_cols)
    agg = suppress_small_cells(agg, "n_samples", k_min, value_cols)
    return _order(agg).select("group", "axis", "n_samples", "n", "n_eff", *value_cols, "suppressed")


def sentiment_by_group(
    attribution: pl.DataFrame,
    scores: pl.DataFrame,
    *,
    k_min: int = 10,
    baseline: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """:func:`sentiment_from_sums` over rows (samples with a null ``negative`` are dropped)."""
    columns = [c for c in ("status", "negative", "vader_compound", "hate_prob") if c in scores.columns]
    return sentiment_from_sums(attributed_sums(_baseline_sums(attribution, baseline), scores.select(*_KEYS, *columns)),
                               k_min=k_min)


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
