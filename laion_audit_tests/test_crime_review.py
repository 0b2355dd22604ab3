"""Crime-word review: the seeded per-word sample from a real store, the CLI, per-word precision of a filled
review, and the asset config that drops low-precision words and puts the review's hash in the recipe."""

from __future__ import annotations

import csv
import hashlib
import random

import pyarrow as pa
import pytest

from laion_audit.audits.crime_review import (
    REVIEW_COLUMNS,
    crime_word_precision,
    precise_words,
    sample_matches,
    word_precision,
)
from laion_audit.defs.alt_text import AltTextScoresConfig, alt_text_recipe, crime_lists
from laion_audit.ops.cli import main as cli
from laion_audit.shards.recipe import Recipe
from laion_audit.shards.store import Provenance, ShardStore


def _write_review(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(REVIEW_COLUMNS)
        for word, is_crime in rows:
            writer.writerow([word, "00000", "k", "a caption", word, is_crime])
    return path


def test_word_precision_counts_yes_and_no_and_skips_blanks(tmp_path):
    review = _write_review(tmp_path / "r.csv", [
        ("theft", "yes"), ("theft", "No"), ("theft", " 1 "), ("theft", ""), ("theft", "TRUE"),
        ("gang", "0"), ("gang", "false"), ("gang", "n"), ("assassin", ""), ("assassin", "  "),
    ])
    assert word_precision(review) == {
        "gang": {"reviewed": 3, "crime": 0, "precision": 0.0},
        "theft": {"reviewed": 4, "crime": 3, "precision": 0.75},
    }  # assassin: no filled row, so not reviewed


def test_word_precision_names_the_row_of_a_bad_value(tmp_path):
    review = _write_review(tmp_path / "r.csv", [("theft", "yes"), ("gang", "maybe")])
    with pytest.raises(ValueError, match=r"line 3.*'maybe'.*gang"):
        word_precision(review)
    (tmp_path / "bad.csv").write_text("word,label\ntheft,yes\n")
    with pytest.raises(ValueError, match="is_crime"):
        word_precision(tmp_path / "bad.csv")


def test_precise_words_keeps_unreviewed_words():
    precision = {"theft": {"reviewed": 4, "crime": 3, "precision": 0.75},
                 "gang": {"reviewed": 3, "crime": 0, "precision": 0.0}}
    assert precise_words(["gang", "theft", "murder"], precision, 0.5) == (["theft", "murder"], ["gang"])
    assert precise_words(["gang", "theft"], precision, 0.75) == (["theft"], ["gang"])  # at the bar: kept
    assert precise_words(["gang", "theft"], precision, 0.0) == (["gang", "theft"], [])


def test_sample_is_seeded_capped_and_independent_of_row_order():
    rng = random.Random(3)
    rows = [(f"{s:05d}", f"{s:05d}{k:04d}", rng.choice([[], ["theft"], ["gang"], ["theft", "gang"]]))
            for s in range(4) for k in range(300)]
    expected_candidates = {w: {(s, k) for s, k, t in rows if w in t} for w in ("theft", "gang")}
    first = sample_matches(rows, per_word=25, seed=0)
    shuffled = rows[:]
    random.Random(9).shuffle(shuffled)
    assert sample_matches(shuffled, per_word=25, seed=0) == first
    assert set(first) == {"theft", "gang"}
    for word, picks in first.items():
        assert len(picks) == 25 == len(set(picks))
        assert set(picks) <= expected_candidates[word]
    assert sample_matches(rows, per_word=25, seed=1) != first
    everything = sample_matches(rows, per_word=10_000, seed=0)
    assert {w: set(p) for w, p in everything.items()} == expected_candidates


def _recipe(asset):
    return Recipe(asset, f"{asset}-test", settings={}, upstream={})


def _store_with_scores(root):
    """Two shards of samples and alt_text_scores written through the real store."""
    store = ShardStore(str(root))
    shards = {
        "00000": [("000000000", "Grand theft in the city", ["theft"]), ("000000001", "a 2-gang plate", ["gang"]),
                  ("000000002", "no crime here?", []), ("000000003", "gang violence and theft", ["gang", "theft"])],
        "00001": [("000010000", "car theft caught on camera", ["theft"]), ("000010001", "", []),
                  ("000010002", "street gang", ["gang"])],
    }
    for shard, rows in shards.items():
        keys = [r[0] for r in rows]
        store.write_table(Provenance(_recipe("samples"), shard, "run"), pa.table(
            {"shard": [shard] * len(rows), "key": keys, "caption": [r[1] for r in rows]}))
        store.write_table(Provenance(_recipe("alt_text_scores"), shard, "run"), pa.table(
            {"shard": [shard] * len(rows), "key": keys,
             "crime_terms": pa.array([r[2] for r in rows], pa.list_(pa.string()))}))
    return shards


def test_cli_writes_a_review_sample_from_the_store(tmp_path, capsys):
    shards = _store_with_scores(tmp_path / "store")
    out = tmp_path / "review" / "review.csv"
    assert cli(["crime-review", "sample", "--store", str(tmp_path / "store"), "--out", str(out),
                "--per-word", "2", "--seed", "0"]) == 0
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(REVIEW_COLUMNS)
    truth = {(shard, key): (caption, terms) for shard, rs in shards.items() for key, caption, terms in rs}
    by_word: dict[str, list] = {}
    for row in rows:
        caption, terms = truth[(row["shard"], row["key"])]
        assert row["caption"] == caption and row["word"] in terms and row["is_crime"] == ""
        assert row["crime_terms"] == "; ".join(terms)
        by_word.setdefault(row["word"], []).append(row)
    assert {w: len(r) for w, r in by_word.items()} == {"gang": 2, "theft": 2}
    assert not list(out.parent.glob(".*.tmp"))  # no temporary file left behind

    # the same command again gives the same file
    again = tmp_path / "again.csv"
    assert cli(["crime-review", "sample", "--store", str(tmp_path / "store"), "--out", str(again),
                "--per-word", "2", "--seed", "0"]) == 0
    assert again.read_bytes() == out.read_bytes()

    # a reviewer fills it in; precision per word follows
    for row in rows:
        row["is_crime"] = "no" if "2-gang" in row["caption"] else "yes"
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, REVIEW_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    expected = {}
    for word, word_rows in by_word.items():
        yes = sum("2-gang" not in r["caption"] for r in word_rows)
        expected[word] = {"reviewed": len(word_rows), "crime": yes, "precision": yes / len(word_rows)}
    assert word_precision(out) == expected
    capsys.readouterr()
    assert cli(["crime-review", "precision", str(out)]) == 0
    assert "theft" in capsys.readouterr().out


def test_cli_without_scores_says_so(tmp_path, capsys):
    assert cli(["crime-review", "sample", "--store", str(tmp_path / "empty"), "--out", str(tmp_path / "r.csv")]) == 1
    assert "alt_text_scores" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_config_drops_low_precision_words_and_the_review_is_in_the_recipe(tmp_path):
    words = tmp_path / "crime.txt"
    words.write_text("theft\ngang\nmurder\n")
    review = _write_review(tmp_path / "review.csv", [("gang", "no"), ("gang", "no"), ("gang", "yes"),
                                                     ("theft", "yes"), ("theft", "no")])
    plain = AltTextScoresConfig(crime_words=str(words))
    reviewed = AltTextScoresConfig(crime_words=str(words), crime_review=str(review), min_precision=0.5)
    lists = crime_lists(reviewed)
    assert lists.words == ["theft", "murder"] and lists.dropped == ["gang"]  # gang 1/3; theft 1/2 kept at 0.5
    assert crime_lists(plain).words == ["theft", "gang", "murder"]
    assert lists.settings["crime_review"]["sha256"] == hashlib.sha256(review.read_bytes()).hexdigest()

    def recipe(config):
        return alt_text_recipe(config, crime_lists(config), ["porn"], {}, "samples-v1").sha256

    before = recipe(reviewed)
    assert before != recipe(plain)
    assert recipe(AltTextScoresConfig(crime_words=str(words), crime_exclusions="")) != recipe(plain)
    assert recipe(AltTextScoresConfig(crime_words=str(words), crime_review=str(review), min_precision=0.4)) != before
    # editing a label re-computes, and the table helper refuses the edited file for the old recipe
    settings = alt_text_recipe(reviewed, crime_lists(reviewed), ["porn"], {}, "samples-v1").settings
    assert crime_word_precision(settings)["gang"] == {"reviewed": 3, "crime": 1, "precision": 1 / 3}
    _write_review(review, [("gang", "yes"), ("theft", "yes")])
    assert recipe(reviewed) != before
    with pytest.raises(ValueError, match="changed since"):
        crime_word_precision(settings)
    assert crime_word_precision(alt_text_recipe(plain, crime_lists(plain), [], {}, "v").settings) is None


def test_min_precision_without_a_review_is_a_config_problem():
    assert any("crime_review" in p for p in AltTextScoresConfig(min_precision=0.5).problems())
    assert any("min_precision" in p for p in AltTextScoresConfig(crime_review="r.csv", min_precision=1.5).problems())
    assert AltTextScoresConfig().problems() == []
