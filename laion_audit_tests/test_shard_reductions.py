"""Dataset tables reduced from per-shard counts equal the tables computed over all rows at once.

Random shards (seeded) with several people per photo, "unclear" labels, failed rows, unscored captions and
hate-speech probabilities; the expectations come from a brute-force Python count over the rows, not from the
product's sums.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict

import polars as pl
import pytest

from laion_audit.audits.group_tables import crime_tables, sentiment_tables
from laion_audit.audits.keyword_audit import keyword_audit
from laion_audit.audits.keyword_counts import EXAMPLES_KEPT, audit_from_counts, keyword_counts, reduce_keyword_counts
from laion_audit.stats.group_sums import SCHEMA, group_sums, reduce_sums, scan_sums

GENDERS = ["male", "female", "unclear"]
RACES = ["white", "black", "east_asian", "unclear"]
WORDS = ["thief", "fraud", "murder"]


def make_shard(shard: str, n: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    rng = random.Random(seed)
    gender, race, scores = [], [], []
    for i in range(n):
        key = f"{shard}{i:05d}"
        persons = rng.choice([0, 1, 1, 2, 3])
        if persons == 0:
            gender.append((shard, key, None, None, "ok"))
            race.append((shard, key, None, None, "ok"))
        for box in range(persons):
            status = "ok" if rng.random() > 0.05 else "error"
            gender.append((shard, key, box, rng.choice(GENDERS), status))
            race.append((shard, key, box, rng.choice(RACES), "ok"))
        words = [w for w in WORDS if rng.random() < 0.15]
        scored = rng.random() > 0.05
        scores.append({"shard": shard, "key": key, "status": "ok" if rng.random() > 0.03 else "no_caption",
                       "crime_match": bool(words) if scored else None, "crime_terms": words,
                       "negative": (rng.random() < 0.3) if scored else None,
                       "vader_compound": round(rng.uniform(-1, 1), 3) if rng.random() > 0.02 else None,
                       "hate_prob": rng.random() if rng.random() > 0.1 else None})
    labels_schema = {"shard": pl.String, "key": pl.String, "box_id": pl.Int64, "label": pl.String, "status": pl.String}
    return (pl.DataFrame(gender, schema=labels_schema, orient="row"),
            pl.DataFrame(race, schema=labels_schema, orient="row"), pl.DataFrame(scores))


@pytest.fixture(scope="module")
def shards():
    return [make_shard(f"{s:05d}", n=150 + 20 * s, seed=s) for s in range(6)]


def _concat(shards, index: int) -> pl.DataFrame:
    return pl.concat([shard[index] for shard in shards], how="vertical_relaxed")


def _close(a: pl.DataFrame, b: pl.DataFrame) -> None:
    keys = ["rule", "axis", "group", "measure", "word"]
    a, b = a.sort(keys, nulls_last=True), b.sort(keys, nulls_last=True)
    assert a.select(keys).equals(b.select(keys))
    assert a["n_samples"].to_list() == b["n_samples"].to_list()
    for column in ("sw", "sw2", "swy", "swy2"):
        assert a[column].to_list() == pytest.approx(b[column].to_list(), rel=1e-12, abs=1e-9)


def test_reduced_shard_sums_equal_the_sums_of_all_rows(shards, tmp_path):
    per_shard = [group_sums(*shard) for shard in shards]
    at_once = group_sums(_concat(shards, 0), _concat(shards, 1), _concat(shards, 2))
    _close(reduce_sums(per_shard, batch=2), at_once)  # the fold, several batches
    paths = []
    for i, sums in enumerate(per_shard):
        paths.append(str(tmp_path / f"{i:05d}.parquet"))
        sums.with_columns(pl.lit("code").alias("code_version")).write_parquet(paths[-1])
    _close(reduce_sums(scan_sums(paths)), at_once)  # the lazy scan over marker-named files


def brute_force_sample_rule(shards):
    """Per group under the sample rule, 'unclear' excluded: samples, crime hits, negatives, compound sum."""
    persons = defaultdict(lambda: {"gender": {}, "race": {}})
    for shard in shards:
        for axis, frame in (("gender", shard[0]), ("race", shard[1])):
            for row in frame.iter_rows(named=True):
                if row["box_id"] is not None and row["status"] == "ok" and row["label"] is not None:
                    persons[row["key"]][axis].setdefault(row["box_id"], row["label"])
    totals = defaultdict(Counter)
    for shard in shards:
        for row in shard[2].iter_rows(named=True):
            people = persons.get(row["key"])
            if row["status"] != "ok" or not people or not (people["gender"] or people["race"]):
                continue
            groups = {"baseline"}
            groups |= {f"gender:{g}" for g in people["gender"].values() if g != "unclear"}
            groups |= {f"race:{r}" for r in people["race"].values() if r != "unclear"}
            for box, r in people["race"].items():
                g = people["gender"].get(box)
                if g is not None and "unclear" not in (g, r):
                    groups.add(f"race:{r}&gender:{g}")
            for group in groups:
                if row["crime_match"] is not None:
                    totals[group]["n"] += 1
                    totals[group]["hits"] += row["crime_match"]
                if row["negative"] is not None:
                    totals[group]["n_sentiment"] += 1
                    totals[group]["negative"] += row["negative"]
    return totals


def test_tables_from_reduced_sums_match_a_brute_force_count(shards):
    reduced = reduce_sums(group_sums(*shard) for shard in shards)
    expected = brute_force_sample_rule(shards)
    rates = {r["group"]: r for r in crime_tables(reduced, k_min=1)["rates"].to_dicts()}
    sentiment = {r["group"]: r for r in sentiment_tables(reduced, k_min=1)["sentiment"].to_dicts()}
    assert set(rates) == set(expected)
    for group, counts in expected.items():
        assert rates[group]["n_samples"] == counts["n"], group
        if rates[group]["hits"] is not None:  # hidden only where the complement rule hides it
            assert rates[group]["hits"] == counts["hits"], group
        assert sentiment[group]["n_samples"] == counts["n_sentiment"], group
    base = rates["baseline"]
    assert base["rate"] == pytest.approx(expected["baseline"]["hits"] / expected["baseline"]["n"])
    assert sentiment["baseline"]["negative_ratio"] == pytest.approx(
        expected["baseline"]["negative"] / expected["baseline"]["n_sentiment"])


def test_published_tables_are_the_same_from_shards_or_from_all_rows(shards):
    reduced = reduce_sums(group_sums(*shard) for shard in shards)
    at_once = group_sums(_concat(shards, 0), _concat(shards, 1), _concat(shards, 2))
    for rule in ("sample", "person"):
        for make in (crime_tables, sentiment_tables):
            one, two = make(reduced, rule=rule), make(at_once, rule=rule)
            for name in one:
                left, right = one[name], two[name]
                assert left.columns == right.columns and left.height == right.height
                for column in left.columns:
                    if left[column].dtype == pl.Float64:
                        assert left[column].is_null().to_list() == right[column].is_null().to_list(), column
                        assert left[column].drop_nulls().to_list() == pytest.approx(
                            right[column].drop_nulls().to_list(), rel=1e-9, nan_ok=True), (rule, name, column)
                    else:
                        assert left[column].to_list() == right[column].to_list(), (rule, name, column)


def test_sums_schema_is_the_same_for_every_shard(shards):
    for shard in shards:
        assert dict(group_sums(*shard).schema) == SCHEMA


# --------------------------------------------------------------------------------------------- keyword audit
def _captions(n: int, seed: int) -> pl.DataFrame:
    """Captions with many distinct enclosing strings of "desi" (design1, design2, ...) to overflow the sketch."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        parts = rng.sample(["desi bride", f"design{rng.randrange(60)} week", "nun", "hot dog", "photo", "xxx",
                            "f*ck", "fuck", "latina", "Designer", "a beach"], k=3)
        rows.append({"caption": " ".join(parts), "url": rng.choice([None, "http://a.com/hotel.jpg", "http://x.com/sex"]),
                     "nsfw": rng.choice(["UNLIKELY", "NSFW", None])})
    return pl.DataFrame(rows)


def test_keyword_counts_reduced_equal_one_audit_over_all_rows():
    search, lists = ["desi", "nun", "latina"], {"printed": ["porn", "hot", "sex", "f*ck"],
                                                "uncensored": ["porn", "hot", "sex", "fuck"]}
    shards = [_captions(120, seed) for seed in range(5)]
    reduced = reduce_keyword_counts([keyword_counts(s, search, lists) for s in shards], batch=2)
    everything = pl.concat(shards)
    for name, keywords in lists.items():
        from_shards = audit_from_counts(reduced, name, search, keywords)
        at_once = keyword_audit(everything, search, keywords, nsfw_list=name)
        for key in ("n_rows", "modes"):
            assert from_shards[key] == at_once[key]
        for term, entry in from_shards["inflation"]["search_strings"].items():
            assert {k: v for k, v in entry.items() if k != "examples"} == {
                k: v for k, v in at_once["inflation"]["search_strings"][term].items() if k != "examples"}


def test_example_sketch_keeps_the_bottom_k_distinct_strings_with_exact_counts():
    shards = [_captions(200, seed) for seed in range(4)]
    reduced = reduce_keyword_counts([keyword_counts(s, ["desi"], {"l": ["hot"]}) for s in shards])
    kept = reduced.filter((pl.col("section") == "example") & (pl.col("search") == "desi"))
    truth: Counter[str] = Counter()
    for frame in shards:
        for caption in frame["caption"]:
            if "desi" in caption.lower().split():
                continue  # the word itself is there: not a substring-only match, no example from it
            for word in caption.lower().split():
                if "desi" in word and word != "desi":
                    truth[word] += 1
    assert len(truth) > EXAMPLES_KEPT  # the sketch had to choose
    ranked = sorted(truth, key=lambda s: hashlib.blake2b(f"0:{s}".encode(), digest_size=8).digest())
    assert sorted(kept["example"].to_list()) == sorted(ranked[:EXAMPLES_KEPT])
    assert {e: c for e, c in kept.select("example", "count").iter_rows()} == {s: truth[s] for s in ranked[:EXAMPLES_KEPT]}
