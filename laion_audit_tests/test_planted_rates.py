"""The audit statistics recover what the sample-data generator planted.

Samples are attributed to the identity groups named in their alt-texts (ground truth), scored by the pipeline's
own scorer, and the per-group crime and negative rates must equal the counts the generator recorded.
"""

import json

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_audit.audits.alt_text_scoring import score_alt_texts
from laion_audit.stats.group_statistics import rate_by_group
from laion_audit.audits.word_lists import load_word_list


@pytest.fixture(scope="module")
def planted(sample_shards):
    manifest = json.loads((sample_shards / "manifest.json").read_text())
    truth = pq.read_table(sample_shards / "ground_truth.parquet")
    samples = pa.table({
        "shard": truth["shard"], "key": truth["key"], "caption": truth["caption"], "url": truth["url"],
        "status": pa.array(["ok"] * truth.num_rows),
    })
    scores = pl.from_arrow(score_alt_texts(samples, crime_terms=load_word_list("crime_words"),
                                           nsfw_terms=load_word_list("nsfw_keywords_birhane2021")))
    rows = [
        {"shard": r["shard"], "key": r["key"], "group": group, "axis": group.split(":")[0], "weight": 1.0}
        for r in truth.select(["shard", "key", "identity_groups"]).to_pylist()
        for group in json.loads(r["identity_groups"] or "[]")
    ]
    attribution = pl.DataFrame(rows, schema={"shard": pl.String, "key": pl.String, "group": pl.String,
                                             "axis": pl.String, "weight": pl.Float64})
    baseline = pl.DataFrame({"shard": truth["shard"].to_pylist(), "key": truth["key"].to_pylist(),
                             "weight": [1.0] * truth.num_rows})
    return manifest["overall"], scores, attribution, baseline


def test_group_crime_rates_equal_the_generators_counts(planted):
    # (VADER's negative flag is not the generator's "negative word planted" count, so only crime is exact.)
    overall, scores, attribution, baseline = planted
    counted = "crime_word"
    table = rate_by_group(attribution, scores, "crime_match", k_min=1, baseline=baseline)
    by_group = {row["group"]: row for row in table.to_dicts()}
    for group, counts in overall["identity_cooccurrence"].items():
        row = by_group[group]
        assert row["n_samples"] == overall["identity_groups"][group]
        assert row["hits"] == pytest.approx(counts[counted])
        assert row["rate"] == pytest.approx(counts[counted] / overall["identity_groups"][group])
        assert row["delta_pct"] == pytest.approx((row["rate"] / row["p_base"] - 1) * 100)


def test_planted_bias_shows_up_as_a_positive_delta(planted):
    overall, scores, attribution, baseline = planted
    table = rate_by_group(attribution, scores, "crime_match", k_min=10, baseline=baseline)
    middle_eastern = table.filter(pl.col("group") == "race:middle_eastern").to_dicts()[0]
    assert not middle_eastern["suppressed"]
    assert middle_eastern["delta_pct"] > 50  # planted at 3x the base crime rate
