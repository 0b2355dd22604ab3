"""score_alt_texts on a crafted samples table; VADER values below were printed from vaderSentiment 3.3.2 first."""

from __future__ import annotations

import random
import re

import pyarrow as pa
import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from laion_audit.audits.alt_text_scoring import ALT_TEXT_SCORES_SCHEMA, AltTextScorer, score_alt_texts

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


# An independent reference, written here from the rules and not from the product's matcher: per caption and
# per term, one regex on the lower-cased text (word mode: no word character on either side; substring: `in`);
# a crime occurrence inside an occurrence of an exclusion phrase does not count.
def _naive_word_spans(term: str, lowered: str) -> list[tuple[int, int]]:
    spans, start = [], lowered.find(term)
    while start != -1:
        end = start + len(term)
        before_ok = start == 0 or not re.match(r"\w", lowered[start - 1])
        after_ok = end == len(lowered) or not re.match(r"\w", lowered[end])
        if before_ok and after_ok:
            spans.append((start, end))
        start = lowered.find(term, start + 1)
    return spans


def _naive_row(caption, url, crime, nsfw, exclusions):
    text = caption.lower() if caption and caption.strip() else ""
    link = url.lower() if url else ""
    excluded = [span for phrase in exclusions for span in _naive_word_spans(phrase, text)]

    def counts(term):
        return any(not any(a <= s and e <= b for a, b in excluded) for s, e in _naive_word_spans(term, text))

    return {
        "crime_terms": [t for t in crime if counts(t)],
        "nsfw_text_substring": [t for t in nsfw if t in text],
        "nsfw_text_word": [t for t in nsfw if _naive_word_spans(t, text)],
        "nsfw_url_substring": [t for t in nsfw if t in link],
        "nsfw_url_word": [t for t in nsfw if _naive_word_spans(t, link)],
    }


ADVERSARIAL_CRIME = ["theft", "gang", "assassin", "counterfeit", "drug dealer", "crime", "thief", "murder",
                     "rape", "arrest", "ü-crime", "straße"]
ADVERSARIAL_EXCLUSIONS = ["grand theft auto", "2-gang", "anti-counterfeit", "assassin's creed", "cardiac arrest",
                          "field of rape", "kool & the gang", "straße des verbrechens"]
ADVERSARIAL_CAPTIONS = [
    "Grand Theft Auto V cover", "GRAND THEFT AUTO and a real car theft", "grand theft autos", "grand theft",
    "2-gang wall plate", "12-gang box", "a 2-gang gang sign", "gang-2-gang", "Kool & The Gang live, gang fight",
    "Anti-Counterfeit label", "anti-counterfeit counterfeit bills", "counterfeiter", "counterfeits",
    "Assassin's Creed Origins", "assassin’s creed (curly apostrophe)", "assassins", "ASSASSIN", "assassin's",
    "a drug dealer", "drug  dealer", "drug-dealer", "Drug Dealers", "drug dealership",
    "crimean war", "CRIME", "crime.", "(crime)", "crime_scene", "crime2", "_crime", "über-crime",
    "ü-crime wave", "Ü-CRIME", "Straße des Verbrechens theft", "STRASSE", "Straße", "ΘΕΦΤ theft",
    "cardiac arrest in a thief's story", "cardiac arrests", "arrested", "field of rape in spring",
    "rapeseed field", "murder, she wrote", "Murder", "thief\tthief", "theft\ngrand theft auto", "",
    "   ", None, "İstanbul theft", "ﬁeld of rape", "thiefthief", "the thief—murder",
    "sex hot photo f*ck porn adult", "Hotel photo", "xxx-rated", "unisex", "F*CK", "Ｈot fullwidth",
]
ADVERSARIAL_URLS = ["http://x.com/hot-porn.jpg", None, "http://adult.example/XXX.jpg", "", "http://photo.com/a"]


@pytest.mark.parametrize("processes", [1, 2])
def test_equals_an_independent_naive_loop_on_adversarial_captions(processes):
    rng = random.Random(7)
    captions = ADVERSARIAL_CAPTIONS * 3 + [
        " ".join(rng.choice(ADVERSARIAL_CAPTIONS[:40]) for _ in range(3)) for _ in range(200)]
    urls = [ADVERSARIAL_URLS[i % len(ADVERSARIAL_URLS)] for i in range(len(captions))]
    rows = [(f"k{i}", c, u) for i, (c, u) in enumerate(zip(captions, urls))]
    out = score_alt_texts(_samples(rows), crime_terms=ADVERSARIAL_CRIME, nsfw_terms=NSFW,
                          crime_exclusions=ADVERSARIAL_EXCLUSIONS, processes=processes).to_pydict()
    analyzer = SentimentIntensityAnalyzer()
    for i, (caption, url) in enumerate(zip(captions, urls)):
        expected = _naive_row(caption, url, ADVERSARIAL_CRIME, NSFW, ADVERSARIAL_EXCLUSIONS)
        for column, value in expected.items():
            assert out[column][i] == value, (i, caption, url, column)
        assert out["crime_match"][i] == bool(expected["crime_terms"])
        if caption and caption.strip():
            assert out["vader_compound"][i] == analyzer.polarity_scores(caption)["compound"]
        else:
            assert out["vader_compound"][i] is None


def test_exclusions_remove_only_hits_inside_the_phrase():
    captions = ["Grand Theft Auto V", "grand theft auto and a car theft", "2-gang wall plate", "gang violence",
                "anti-counterfeit label", "counterfeit bills", "Assassin's Creed", "an assassin"]
    rows = [(f"k{i}", c, None) for i, c in enumerate(captions)]
    out = score_alt_texts(_samples(rows), crime_terms=ADVERSARIAL_CRIME, nsfw_terms=NSFW,
                          crime_exclusions=ADVERSARIAL_EXCLUSIONS).to_pydict()
    assert out["crime_terms"] == [[], ["theft"], [], ["gang"], [], ["counterfeit"], [], ["assassin"]]
    plain = score_alt_texts(_samples(rows), crime_terms=ADVERSARIAL_CRIME, nsfw_terms=NSFW).to_pydict()
    assert all(plain["crime_terms"])


def test_one_scorer_serves_several_shards():
    shards = [ROWS, ROWS[::-1] * 3, ROWS[2:5]]
    expected = [score_alt_texts(_samples(r), crime_terms=CRIME, nsfw_terms=NSFW) for r in shards]
    with AltTextScorer(crime_terms=CRIME, nsfw_terms=NSFW, processes=2) as scorer:
        pool = scorer._pool
        got = [scorer.score(_samples(r)) for r in shards]
        assert scorer._pool is pool  # the same pool for every shard
    assert scorer._pool is None
    assert all(g.equals(e) for g, e in zip(got, expected))
    with pytest.raises(RuntimeError, match="closed"):
        scorer.score(_samples())
