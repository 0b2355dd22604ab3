"""Hand-computed checks for group attribution, per-group rates, Δ vs baseline, suppression, sentiment, charts."""

from __future__ import annotations

import base64
import math

import polars as pl
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from laion_audit.audits.attribution import attribute_groups, baseline_samples
from laion_audit.stats.group_statistics import (
    bar_chart_with_ci,
    markdown_image,
    per_word_breakdown,
    rate_by_group,
    sentiment_by_group,
    suppress_small_cells,
)

Z = 1.959963984540054


def _keys(idx):
    return [f"k{i:03d}" for i in idx]


def _attr(group, axis, idx, weight=1.0):
    return pl.DataFrame(
        {
            "shard": ["s0"] * len(idx),
            "key": _keys(idx),
            "group": [group] * len(idx),
            "axis": [axis] * len(idx),
            "weight": [float(weight)] * len(idx),
        }
    )


@pytest.fixture()
def crafted():
    """Baseline: 100 samples, k000..k019 crime hits (p_base = 0.2).

    A: k000..k009 (hits) + k020..k029 (no hits) -> 20 samples, 10 hits, p = 0.5, Δ = +150%.
    B: 9 samples k030..k038 -> suppressed at k_min=10. C: 10 samples k040..k049 -> 0 hits, published.
    """
    attribution = pl.concat(
        [
            _attr("race:A", "race", list(range(0, 10)) + list(range(20, 30))),
            _attr("race:B", "race", range(30, 39)),
            _attr("race:C", "race", range(40, 50)),
        ]
    )
    baseline = pl.DataFrame({"shard": ["s0"] * 100, "key": _keys(range(100)), "weight": [1.0] * 100})
    crime = [i < 20 for i in range(100)]
    terms = [(["murder"] if i < 10 else ["theft"]) if i < 20 else [] for i in range(100)]
    terms[0] = ["murder", "theft", "murder"]  # duplicates count once per sample
    outcomes = pl.DataFrame(
        {
            "shard": ["s0"] * 100,
            "key": _keys(range(100)),
            "crime_match": crime,
            "crime_terms": terms,
            "status": ["ok"] * 100,
        }
    )
    return attribution, baseline, outcomes


def _wilson(x, n, z=Z):
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_rate_delta_wilson_nested_interval(crafted):
    attribution, baseline, outcomes = crafted
    res = rate_by_group(attribution, outcomes, "crime_match", k_min=10, baseline=baseline)
    assert res["group"].to_list() == ["baseline", "race:A", "race:B", "race:C"]
    a = res.filter(pl.col("group") == "race:A").row(0, named=True)
    assert a["n_samples"] == 20 and a["n"] == 20.0 and a["hits"] == 10.0
    assert a["rate"] == pytest.approx(0.5)
    assert a["p_base"] == pytest.approx(0.2)
    assert a["delta_pct"] == pytest.approx(150.0)
    # Wilson by hand: centre 0.5, half = 1.95996/1.192073 * sqrt(0.0125 + 0.0024009) = 0.200703
    assert a["ci_low"] == pytest.approx(0.299297, abs=1e-5)
    assert a["ci_high"] == pytest.approx(0.700703, abs=1e-5)
    lo, hi = _wilson(10, 20)
    assert (a["ci_low"], a["ci_high"]) == pytest.approx((lo, hi), abs=1e-12)
    sm_lo, sm_hi = proportion_confint(10, 20, alpha=0.05, method="wilson")
    assert (a["ci_low"], a["ci_high"]) == pytest.approx((sm_lo, sm_hi), abs=1e-9)
    # Group A (20 samples, 10 hits) lies inside the baseline (100 samples, 20 hits). Writing the baseline hits as
    # A's hits plus the other 80 samples' 10 hits, by hand: Var(log p1) = (1-p1)/x1 = 0.05, Var(log p0) =
    # (1-p0)/x0 = 0.04, Cov = Var(x1)/(n1 n0 p1 p0) = 20*0.25/(20*100*0.1) = 0.025, so
    # Var(log RR) = 0.05 + 0.04 - 2*0.025 = 0.04, se = 0.2 (Katz, ignoring the overlap, would say 0.3).
    se = 0.2
    assert a["delta_ci_low"] == pytest.approx((2.5 * math.exp(-Z * se) - 1) * 100, rel=1e-9)
    assert a["delta_ci_high"] == pytest.approx((2.5 * math.exp(Z * se) - 1) * 100, rel=1e-9)
    assert a["delta_ci_low"] == pytest.approx(68.927, abs=1e-2)
    assert a["delta_ci_high"] == pytest.approx(269.982, abs=1e-2)
    assert a["suppressed"] is False

    base = res.filter(pl.col("group") == "baseline").row(0, named=True)
    assert base["n_samples"] == 100 and base["rate"] == pytest.approx(0.2) and base["delta_pct"] == pytest.approx(0)

    # k_min boundary: 9 samples suppressed (row kept, numbers nulled), 10 samples published
    b = res.filter(pl.col("group") == "race:B").row(0, named=True)
    assert b["suppressed"] is True and b["n_samples"] == 9
    assert all(b[c] is None for c in ("hits", "rate", "ci_low", "ci_high", "delta_pct", "delta_ci_low"))
    c = res.filter(pl.col("group") == "race:C").row(0, named=True)
    assert c["suppressed"] is False and c["hits"] == 0.0 and c["rate"] == 0.0
    assert c["delta_pct"] == pytest.approx(-100.0)
    assert c["delta_ci_low"] is None and c["delta_ci_high"] is None  # Katz undefined with 0 hits
    assert c["ci_low"] == pytest.approx(0.0) and c["ci_high"] == pytest.approx(_wilson(0, 10)[1])


def test_default_baseline_is_attributed_samples(crafted):
    attribution, _, outcomes = crafted
    res = rate_by_group(attribution, outcomes, "crime_match", k_min=10)
    base = res.filter(pl.col("group") == "baseline").row(0, named=True)
    assert base["n_samples"] == 39 and base["rate"] == pytest.approx(10 / 39)


def test_person_weights_use_effective_n():
    # weights 0.5,0.5,1,1 with outcomes 1,0,1,0: n=3, hits=1.5, p=0.5, n_eff = 9/2.5 = 3.6
    attribution = pl.DataFrame(
        {"shard": ["s"] * 4, "key": ["a", "b", "c", "d"], "group": ["g"] * 4, "axis": ["gender"] * 4,
         "weight": [0.5, 0.5, 1.0, 1.0]}
    )
    outcomes = pl.DataFrame({"shard": ["s"] * 4, "key": ["a", "b", "c", "d"], "crime_match": [True, False, True, False]})
    res = rate_by_group(attribution, outcomes, "crime_match", k_min=1)
    g = res.filter(pl.col("group") == "g").row(0, named=True)
    assert g["n"] == pytest.approx(3.0) and g["hits"] == pytest.approx(1.5) and g["rate"] == pytest.approx(0.5)
    assert g["n_eff"] == pytest.approx(3.6)
    assert (g["ci_low"], g["ci_high"]) == pytest.approx(_wilson(1.8, 3.6), abs=1e-12)


def _labels(rows):
    return pl.DataFrame(rows, schema=["shard", "key", "box_id", "label", "status"], orient="row")


def test_sample_vs_person_rule_and_intersections():
    gender = _labels(
        [
            ("s", "two", 0, "male", "ok"),
            ("s", "two", 1, "female", "ok"),
            ("s", "solo", 0, "male", "ok"),
            ("s", "solo", 1, "female", "error"),  # failed labelling: not a person
            ("s", "none", None, None, "no_valid_person"),
            ("s", "unc", 0, "unclear", "ok"),
        ]
    )
    race = _labels(
        [
            ("s", "two", 0, "black", "ok"),
            ("s", "two", 1, "white", "ok"),
            ("s", "solo", 0, "black", "ok"),
            ("s", "none", None, None, "no_valid_person"),
            ("s", "unc", 0, "white", "ok"),
        ]
    )
    by_sample = attribute_groups(gender, race, rule="sample")
    by_person = attribute_groups(gender, race, rule="person")
    assert by_sample.columns == ["shard", "key", "group", "axis", "weight"]

    def w(df, key, group):
        sel = df.filter((pl.col("key") == key) & (pl.col("group") == group))
        return sel["weight"].to_list()

    assert w(by_sample, "two", "gender:male") == [1.0] and w(by_sample, "two", "gender:female") == [1.0]
    assert w(by_person, "two", "gender:male") == [0.5] and w(by_person, "two", "gender:female") == [0.5]
    assert w(by_person, "solo", "gender:male") == [1.0] and w(by_person, "solo", "gender:female") == []
    # intersections use each person's own race and gender: no black&female in "two"
    assert w(by_sample, "two", "race:black&gender:male") == [1.0]
    assert w(by_sample, "two", "race:white&gender:female") == [1.0]
    assert w(by_sample, "two", "race:black&gender:female") == []
    assert w(by_person, "two", "race:white&gender:female") == [0.5]
    assert set(by_sample.filter(pl.col("key") == "two")["axis"]) == {"gender", "race", "intersection"}
    # "unclear" excluded by default (no group), kept with exclude=()
    assert w(by_sample, "unc", "gender:unclear") == []
    assert w(by_sample, "unc", "race:white") == [1.0]
    assert w(by_sample, "unc", "race:white&gender:unclear") == []
    kept = attribute_groups(gender, race, rule="sample", exclude=())
    assert w(kept, "unc", "gender:unclear") == [1.0] and w(kept, "unc", "race:white&gender:unclear") == [1.0]
    assert by_sample.filter(pl.col("key") == "none").height == 0
    # baseline: samples with >= 1 valid person, incl. the all-unclear one, weight 1
    base = baseline_samples(gender, race)
    assert base["key"].to_list() == ["solo", "two", "unc"] and base["weight"].to_list() == [1.0] * 3
    with pytest.raises(ValueError):
        attribute_groups(gender, race, rule="bogus")


def test_per_word_breakdown(crafted):
    attribution, baseline, outcomes = crafted
    res = per_word_breakdown(attribution, outcomes, k_min=10, baseline=baseline)
    assert set(res["word"]) == {"murder", "theft"}
    row = res.filter((pl.col("group") == "race:A") & (pl.col("word") == "murder")).row(0, named=True)
    # A has k000..k009 with "murder" (k000 listed twice: counted once); baseline 10/100
    assert row["hits"] == 10.0 and row["rate"] == pytest.approx(0.5)
    assert row["baseline_hits"] == 10.0 and row["baseline_rate"] == pytest.approx(0.1)
    assert row["delta_pct"] == pytest.approx(400.0)
    theft = res.filter((pl.col("group") == "race:A") & (pl.col("word") == "theft")).row(0, named=True)
    # only k000 carries "theft" inside A; baseline k000 + k010..k019 = 11
    assert theft["hits"] == 1.0 and theft["baseline_hits"] == 11.0
    assert theft["delta_pct"] == pytest.approx((0.05 / 0.11 - 1) * 100)
    c = res.filter((pl.col("group") == "race:C") & (pl.col("word") == "murder")).row(0, named=True)
    assert c["hits"] == 0.0 and c["suppressed"] is False
    b = res.filter(pl.col("group") == "race:B")
    assert b["suppressed"].all() and b["hits"].is_null().all() and b["rate"].is_null().all()


def test_sentiment_by_group():
    compounds = [-0.8, -0.6, -0.4, -0.2, 0.0, 0.1, 0.3, 0.5, 0.7, 0.9]
    negative = [c <= -0.05 for c in compounds]  # 4 of 10
    hate = [0.9, 0.6, 0.1, 0.2, 0.0, 0.0, 0.5, 0.3, 0.1, 0.3]
    keys = _keys(range(12))
    scores = pl.DataFrame(
        {
            "shard": ["s0"] * 12,
            "key": keys,
            "negative": negative + [False, None],
            "vader_compound": compounds + [0.5, None],
            "hate_prob": hate + [0.0, None],
            "status": ["ok"] * 11 + ["error"],
        }
    )
    attribution = pl.concat([_attr("race:M", "race", range(10)), _attr("race:X", "race", [10, 11])])
    res = sentiment_by_group(attribution, scores, k_min=10)
    m = res.filter(pl.col("group") == "race:M").row(0, named=True)
    assert m["n_samples"] == 10
    assert m["negative_ratio"] == pytest.approx(0.4)
    assert (m["negative_ci_low"], m["negative_ci_high"]) == pytest.approx(
        proportion_confint(4, 10, method="wilson"), abs=1e-9
    )
    mean = sum(compounds) / 10  # 0.05
    sd = math.sqrt(sum((c - mean) ** 2 for c in compounds) / 9)
    half = stats.t.ppf(0.975, 9) * sd / math.sqrt(10)
    assert m["compound_mean"] == pytest.approx(0.05)
    assert (m["compound_ci_low"], m["compound_ci_high"]) == pytest.approx((mean - half, mean + half), abs=1e-12)
    assert m["hate_mean"] == pytest.approx(0.3) and m["hate_share"] == pytest.approx(0.3)
    base = res.filter(pl.col("group") == "baseline").row(0, named=True)
    assert base["n_samples"] == 11  # the "error" sample is dropped
    assert base["negative_ratio"] == pytest.approx(4 / 11)
    assert m["negative_rr"] == pytest.approx(0.4 / (4 / 11))
    x = res.filter(pl.col("group") == "race:X").row(0, named=True)
    assert x["suppressed"] is True and x["negative_ratio"] is None and x["compound_mean"] is None
    # no hate_prob column -> no hate columns
    plain = sentiment_by_group(attribution, scores.drop("hate_prob"), k_min=10)
    assert "hate_mean" not in plain.columns


def test_suppress_small_cells_helper():
    df = pl.DataFrame({"n": [9, 10, None], "v": [1.0, 2.0, 3.0], "keep": ["a", "b", "c"]})
    out = suppress_small_cells(df, "n", 10, ["v"])
    assert out["suppressed"].to_list() == [True, False, True]
    assert out["v"].to_list() == [None, 2.0, None] and out["keep"].to_list() == ["a", "b", "c"]
    again = suppress_small_cells(out.with_columns(pl.lit(100).alias("m")), "m", 10, ["v"])
    assert again["suppressed"].to_list() == [True, False, True]  # OR-ed with the existing flag


def test_chart_and_markdown(crafted):
    attribution, baseline, outcomes = crafted
    res = rate_by_group(attribution, outcomes, "crime_match", k_min=10, baseline=baseline)
    png = bar_chart_with_ci(res, "rate", "ci_low", "ci_high", "group", "crime co-occurrence")
    assert png.startswith(b"\x89PNG")
    md = markdown_image(png, "crime rate")
    assert md.startswith("![crime rate](data:image/png;base64,") and md.endswith(")")
    assert base64.b64decode(md.split(",", 1)[1][:-1]) == png
    empty = bar_chart_with_ci(res.filter(pl.col("suppressed")), "rate", "ci_low", "ci_high", "group", "none")
    assert empty.startswith(b"\x89PNG")
