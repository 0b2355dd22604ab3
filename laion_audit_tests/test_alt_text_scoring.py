"""score_alt_texts on a crafted samples table; VADER values below were printed from vaderSentiment 3.3.2 first."""

from __future__ import annotations

import pyarrow as pa
import pytest

from laion_audit.audits.alt_text_scoring import ALT_TEXT_SCORES_SCHEMA, naive_score_loop, score_alt_texts

NSFW = ["porn", "hot", "adult", "xxx", "sex", "f*ck", "rape"]
CRIME = ["crime", "thief", "prison"]

# caption -> VADER compound (checked by hand with SentimentIntensityAnalyzer().polarity_scores)
#   "Hotel photo" 0.0 | "bad" -0.5423 | "sad" -0.4767 | "okay" 0.2263 | "good" 0.4404 | "hmm meh" -0.0772
#   "a crime" -0.5423 (neg 0.778, neu 0.222, pos 0.0)
ROWS = [
    ("k0", "Hotel photo", "http://x.com/hot-porn.jpg"),
    ("k1", "bad", "http://x.com/a.jpg"),
    ("k2", "sad", None),
    ("k3", "okay", "http://x.com/b.jpg"),
    ("k4", "good", "http://x.com/c.jpg"),
    ("k5", None, "http://adult.com/xxx.jpg"),
    ("k6", "   ", None),
    ("k7", "a crime", "http://x.com/crimean.jpg"),
    ("k8", "hmm meh", "http://x.com/d.jpg"),
    ("k9", "Crimean F*ck prison HOT", "http://x.com/e.jpg"),
]


def _samples(rows=ROWS) -> pa.Table:
    return pa.table(
        {
            "shard": ["00000"] * len(rows),
            "key": [r[0] for r in rows],
            "caption": [r[1] for r in rows],
            "url": [r[2] for r in rows],
            "status": ["ok"] * len(rows),
        }
    )


def _score(**kw) -> dict[str, list]:
    kw.setdefault("crime_terms", CRIME)
    kw.setdefault("nsfw_terms", NSFW)
    return score_alt_texts(_samples(), **kw).to_pydict()


def test_schema_rows_and_no_caption():
    out = score_alt_texts(_samples(), crime_terms=CRIME, nsfw_terms=NSFW)
    assert out.schema == ALT_TEXT_SCORES_SCHEMA
    d = out.to_pydict()
    assert d["key"] == [r[0] for r in ROWS]
    assert d["has_caption"] == [True] * 5 + [False, False] + [True] * 3
    assert d["status"] == ["ok"] * 5 + ["no_caption"] * 2 + ["ok"] * 3
    assert d["error"] == [None] * 10
    for col in ("vader_neg", "vader_neu", "vader_pos", "vader_compound", "negative", "positive"):
        assert d[col][5] is None and d[col][6] is None
    # no caption: no text hits, but the URL is still checked
    assert d["nsfw_text_substring"][5] == [] and d["crime_terms"][5] == [] and d["crime_match"][5] is False
    assert d["nsfw_url_substring"][5] == ["adult", "xxx"]
    assert d["nsfw_url_word"][5] == ["adult", "xxx"]


def test_vader_values_and_default_thresholds():
    d = _score()
    assert d["vader_compound"][7] == pytest.approx(-0.5423)
    assert (d["vader_neg"][7], d["vader_neu"][7], d["vader_pos"][7]) == pytest.approx((0.778, 0.222, 0.0))
    # defaults -0.05 / 0.05: "hmm meh" (-0.0772) negative, "Hotel photo" (0.0) neither
    assert d["negative"] == [False, True, True, False, False, None, None, True, True, True]  # last: -0.5106
    assert d["positive"][:5] == [False, False, False, True, True]
    assert d["negative"][0] is False and d["positive"][0] is False


def test_thresholds_are_inclusive():
    d = _score(negative_threshold=-0.5423, positive_threshold=0.2263)
    assert d["negative"][1] is True  # "bad" == threshold
    assert d["negative"][2] is False  # "sad" -0.4767 above it
    assert d["negative"][8] is False
    assert d["positive"][3] is True  # "okay" == threshold
    d = _score(positive_threshold=0.3)
    assert d["positive"][3] is False and d["positive"][4] is True


def test_term_columns_modes_and_fields():
    d = _score()
    # "Hotel photo": substring fires "hot" in TEXT, word mode does not; URL hits are separate
    assert d["nsfw_text_substring"][0] == ["hot"]
    assert d["nsfw_text_word"][0] == []
    assert d["nsfw_url_substring"][0] == ["porn", "hot"]
    assert d["nsfw_url_word"][0] == ["porn", "hot"]
    # crime words are whole-word: "Crimean" is not "crime"; f*ck literal; case-insensitive
    assert d["crime_terms"][9] == ["prison"]
    assert d["crime_terms"][7] == ["crime"]
    assert d["crime_match"] == [False] * 7 + [True, False, True]
    assert d["nsfw_text_word"][9] == ["hot", "f*ck"]


def test_two_processes_identical_to_one():
    rows = ROWS * 7
    one = score_alt_texts(_samples(rows), crime_terms=CRIME, nsfw_terms=NSFW, processes=1)
    two = score_alt_texts(_samples(rows), crime_terms=CRIME, nsfw_terms=NSFW, processes=2)
    assert one.equals(two)


def test_naive_loop_agrees():
    captions, urls = [r[1] for r in ROWS], [r[2] for r in ROWS]
    naive = naive_score_loop(captions, urls, CRIME, NSFW)
    d = _score()
    for i, row in enumerate(naive):
        for col in ("crime_terms", "nsfw_text_substring", "nsfw_text_word", "nsfw_url_substring", "nsfw_url_word"):
            assert row[col] == d[col][i], (i, col)
        if row["vader"] is None:
            assert d["vader_compound"][i] is None
        else:
            assert row["vader"]["compound"] == d["vader_compound"][i]
