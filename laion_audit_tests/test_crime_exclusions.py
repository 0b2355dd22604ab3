"""The shipped crime exclusion phrases: loadable like any list, each one live, removing titles and products on
generated confounders while true crime captions keep their words, and what they remove on the real sample."""

from __future__ import annotations

import importlib.util
import random
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from laion_audit.audits.alt_text_scoring import score_alt_texts
from laion_audit.audits.word_lists import load_word_list

REPO = Path(__file__).resolve().parents[1]
CRIME = load_word_list("crime_words")
EXCLUSIONS = load_word_list("crime_exclusions")


def _whole_word(term: str, text: str) -> bool:
    """Independent of the product's matcher: find, then look at the neighbours."""
    start = text.find(term)
    while start != -1:
        end = start + len(term)
        if (start == 0 or not (text[start - 1].isalnum() or text[start - 1] == "_")) and (
                end == len(text) or not (text[end].isalnum() or text[end] == "_")):
            return True
        start = text.find(term, start + 1)
    return False


def _crime_terms(captions, exclusions=EXCLUSIONS):
    table = pa.table({"shard": ["00000"] * len(captions), "key": [str(i) for i in range(len(captions))],
                      "caption": captions, "url": [None] * len(captions)})
    return score_alt_texts(table, crime_terms=CRIME, nsfw_terms=["porn"], crime_exclusions=exclusions
                           ).column("crime_terms").to_pylist()


def test_loads_by_name_and_by_path(tmp_path):
    assert len(EXCLUSIONS) > 50 and "grand theft auto" in EXCLUSIONS and "2-gang" in EXCLUSIONS
    assert all(e == e.lower().strip() and not e.startswith("#") for e in EXCLUSIONS)
    mine = tmp_path / "my_exclusions.txt"
    mine.write_text("# mine\nGrand Theft Auto\n\n")
    assert load_word_list(str(mine)) == ["grand theft auto"] == load_word_list(mine)


def test_every_exclusion_contains_a_crime_word():
    """An entry without a crime word in it could never remove a match: a typo or a stale entry."""
    dead = [e for e in EXCLUSIONS if not any(_whole_word(word, e) for word in CRIME)]
    assert dead == []


TEMPLATES = ["{}", "{} poster", "New {} for sale - free shipping", "Photo: {}.", "[{}] (2019)", "“{}”"]


def test_generated_confounders_lose_their_match_true_crime_keeps_it():
    rng = random.Random(0)
    confounders, mixed, expected_mixed = [], [], []
    for phrase in EXCLUSIONS:
        text = rng.choice(TEMPLATES).format(phrase)
        text = "".join(c.upper() if rng.random() < 0.3 else c for c in text)
        confounders.append(text)
        word = rng.choice([w for w in CRIME if " " not in w])
        mixed.append(f"{text} and a {word} nearby")
        # the added word counts; so does a crime word of the phrase when it is also the added word
        expected_mixed.append([word])
    assert _crime_terms(confounders) == [[] for _ in confounders]
    # without the exclusions every confounder is a hit: the list is what removes them
    assert all(_crime_terms(confounders, exclusions=[]))
    assert _crime_terms(mixed) == expected_mixed


def test_true_crime_captions_are_untouched():
    captions = ["Police arrest a suspect after the car theft", "gang violence in the city", "assassin kills senator",
                "counterfeit money seized at the border", "a thief steals a copy of Grand Theft Auto",
                "cardiac arrest after the assault", "fraud trial of the anti-theft device maker",
                "rape survivor speaks out", "murder suspect arrested"]
    expected = [["arrest", "theft"], ["gang", "violence"], ["assassin"], ["counterfeit"], ["thief"], ["assault"],
                ["fraud"], ["rape"], ["arrested", "murder"]]
    got = _crime_terms(captions)
    assert [sorted(g) for g in got] == [sorted(e) for e in expected]


def _report_module():
    spec = importlib.util.spec_from_file_location("crime_exclusions_report",
                                                  REPO / "benchmarks" / "crime_exclusions_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_what_the_exclusions_remove_on_the_shared_laion_sample(shared_data, capsys):
    sample = shared_data / "laion_metadata_sample" / "laion400m_text_sample_1000.parquet"
    effects = _report_module().main([str(sample)])
    printed = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + printed)
    captions = pq.read_table(sample, columns=["TEXT"]).column("TEXT").to_pylist()
    assert len(effects) == sum(1 for c in captions if c and any(_whole_word(w, c.lower()) for w in CRIME))
    removed = [e for e in effects if e["removed"]]
    # each removal is explained by an exclusion phrase in that caption ...
    for effect in removed:
        lowered = effect["caption"].lower()
        assert any(_whole_word(p, lowered) and any(_whole_word(w, p) for w in effect["removed"]) for p in EXCLUSIONS)
    # ... the oilseed crop is among them, and a caption about abuse is not
    assert any(re.search("field of rape", e["caption"], re.I) for e in removed)
    assert all("abuse" in e["with"] for e in effects if "child abuse" in e["caption"])
