"""TermMatcher: both modes on crafted texts, and equality with the one-term-at-a-time reference."""

from __future__ import annotations

import random

import pytest

from laion_audit.audits.text_matching import TermMatcher, naive_matches

NSFW = ["porn", "hot", "adult", "xxx", "sex", "f*ck", "rape"]


def test_substring_counts_inside_words_word_mode_does_not():
    sub, word = TermMatcher(["desi", "hot"], "substring"), TermMatcher(["desi", "hot"], "word")
    assert sub.matches("Design week") == ["desi"]
    assert word.matches("Design week") == []
    assert sub.matches("Hotel photo") == ["hot"]
    assert word.matches("Hotel photo") == []
    assert word.matches("Desi wedding, HOT summer") == ["desi", "hot"]


def test_literal_punctuation_and_phrases():
    word = TermMatcher(NSFW, "word")
    assert word.matches("F*ck this") == ["f*ck"]
    assert word.matches("Fuck this") == []  # '*' is literal, not a wildcard
    assert word.matches("fck") == []
    phrase = TermMatcher(["hot dog", "hot", "dog"], "word")
    assert phrase.matches("A hot dog stand") == ["hot dog", "hot", "dog"]
    assert phrase.matches("hot doggy") == ["hot"]
    assert phrase.matches("hotdog") == []
    assert TermMatcher(["hot dog"], "substring").matches("HOT DOGS") == ["hot dog"]


def test_list_order_once_each_and_overlaps():
    sub = TermMatcher(["sex", "unisex", "porn"], "substring")
    assert sub.matches("porn unisex sex sex") == ["sex", "unisex", "porn"]
    assert sub.matches("unisex") == ["sex", "unisex"]
    word = TermMatcher(["sex", "unisex"], "word")
    assert word.matches("unisex") == ["unisex"]
    assert word.matches("sex-unisex") == ["sex", "unisex"]  # '-' is not a word character
    assert TermMatcher(["Hot", "hot", " "], "word").terms == ["hot"]


def test_match_column_none_and_empty():
    m = TermMatcher(NSFW, "substring")
    assert m.match_column([None, "", "nothing", "xxx adult"]) == [[], [], [], ["adult", "xxx"]]
    assert TermMatcher([], "word").match_column(["a", None]) == [[], []]
    with pytest.raises(ValueError):
        TermMatcher(["a"], "fuzzy")


def test_equals_one_term_at_a_time_reference():
    terms = NSFW + ["hot dog", "ho", "dog", "adult content", "s", "desi", "design"]
    alphabet = list("hotdgsexadultpornf*ckrapeign ") + [" ", "-", ".", "É"]
    rng = random.Random(0)
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(3000)]
    texts += ["hot dog", "Hot-dog", "adult content xxx", "design desi"]
    for mode in ("substring", "word"):
        m = TermMatcher(terms, mode)
        got = m.match_column(texts)
        assert got == [naive_matches(t, terms, mode) for t in texts]
        assert m.any_column(texts) == [bool(g) for g in got]
