"""The shipped word lists and the loaders for shipped and third-party lists."""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

import pytest

from laion_audit.audits.word_lists import (
    load_guilbeault_categories,
    load_identity_terms,
    load_json_lexicon,
    load_sobit_taxonomy,
    load_word_list,
    term_pattern,
)

PAPER_LEXICONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "paper_lexicons"
RACE_GROUPS = {"white", "black", "east_asian", "latino", "middle_eastern", "south_asian", "southeast_asian"}


def paper_lexicon(name: str) -> Path:
    path = PAPER_LEXICONS / name
    if not path.is_file():
        pytest.skip(f"third-party lexicon not present at {path}")
    return path


def test_birhane_lists_are_quoted_exactly():
    assert load_word_list("nsfw_keywords_birhane2021") == ["porn", "hot", "adult", "xxx", "sex", "f*ck", "rape"]
    assert load_word_list("keyword_audit_search_strings") == ["desi", "nun", "latina"]


def test_crime_words_follow_their_inclusion_rule():
    crime = load_word_list("crime_words")
    assert 60 <= len(crime) <= 120
    assert len(crime) == len(set(crime)) and all(term == term.strip().lower() for term in crime)
    assert {"armed robbery", "arrest", "arrested", "arrests", "murder", "theft"} <= set(crime)
    assert not {"shot", "charge", "bust", "fine", "cell", "police"} & set(crime)
    header = importlib.resources.files("laion_audit.lexical_data").joinpath("crime_words.txt").read_text()
    assert header.startswith("#") and "Inclusion rule" in header


def test_identity_terms_have_the_paper_groups_and_no_term_in_two_groups():
    identity = load_identity_terms()
    assert set(identity) == {"gender", "race"}
    assert set(identity["gender"]) == {"male", "female"}
    assert set(identity["race"]) == RACE_GROUPS
    for axis, groups in identity.items():
        terms = [term for words in groups.values() for term in words]
        assert terms and len(terms) == len(set(terms)), axis
        assert all(term == term.lower() for term in terms)
    assert "man" in identity["gender"]["male"] and "woman" in identity["gender"]["female"]
    assert "arab" in identity["race"]["middle_eastern"] and "nigerian" in identity["race"]["black"]


def test_every_shipped_file_is_packaged_and_described_in_the_readme():
    package = importlib.resources.files("laion_audit.lexical_data")
    readme = package.joinpath("README.md").read_text()
    shipped = [entry.name for entry in package.iterdir() if entry.name.endswith((".txt", ".json"))]
    assert {"crime_words.txt", "identity_terms.json", "nsfw_keywords_birhane2021.txt",
            "keyword_audit_search_strings.txt"} <= set(shipped)
    for name in shipped:
        assert f"`{name}`" in readme, name
    assert "Apache-2.0" in readme and "So-B-IT" in readme and "Guilbeault" in readme
    assert load_json_lexicon("sentiment_words").keys() == {"positive", "negative"}


def test_a_path_loads_that_file_normalised(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("\ufeff# my list\n  Foo \n\nbar\nFOO\n# bar\nbaz qux\n", encoding="utf-8")
    assert load_word_list(path) == ["foo", "bar", "baz qux"]
    assert load_word_list(str(path)) == ["foo", "bar", "baz qux"]


def test_missing_lists_raise_naming_what_was_looked_for(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_word_list(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="no_such_list"):
        load_word_list("no_such_list")
    # A Path is always a path, even without a suffix: it never silently loads the shipped list.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="crime_words"):
        load_word_list(Path("crime_words"))


def test_identity_terms_from_a_user_file_and_a_malformed_one(tmp_path):
    good = tmp_path / "identity.json"
    good.write_text(json.dumps({"gender": {"male": ["Man"]}, "race": {"white": [" White "]}}))
    assert load_identity_terms(good) == {"gender": {"male": ["man"]}, "race": {"white": ["white"]}}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"gender": ["man"], "race": {}}))
    with pytest.raises(ValueError, match="bad.json"):
        load_identity_terms(bad)


def test_sobit_taxonomy_from_json(tmp_path):
    path = tmp_path / "sobit.json"
    path.write_text(json.dumps({"Criminal justice": ["Thief", "inmate"], "Religion": ["nun"]}))
    assert load_sobit_taxonomy(path) == {"Criminal justice": ["thief", "inmate"], "Religion": ["nun"]}


def test_sobit_taxonomy_from_python_is_parsed_never_executed(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "sobit_taxonomy.py"
    path.write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('yes')\n"
        "sobit_taxonomy = {\n    'Religion': ['Nun', 'priest'],\n    'Occupation': ('Doctor',),\n}\n"
    )
    assert load_sobit_taxonomy(path) == {"Religion": ["nun", "priest"], "Occupation": ["doctor"]}
    assert not marker.exists()
    annotated = tmp_path / "annotated.py"
    annotated.write_text("sobit_taxonomy: dict = {'Political': ['voter']}\n")
    assert load_sobit_taxonomy(annotated) == {"Political": ["voter"]}


def test_sobit_taxonomy_rejects_what_it_cannot_read_literally(tmp_path):
    computed = tmp_path / "computed.py"
    computed.write_text("words = ['a']\nsobit_taxonomy = {'A': words}\n")
    with pytest.raises(ValueError, match="literal"):
        load_sobit_taxonomy(computed)
    absent = tmp_path / "absent.py"
    absent.write_text("taxonomy = {}\n")
    with pytest.raises(ValueError, match="sobit_taxonomy"):
        load_sobit_taxonomy(absent)
    wrong_shape = tmp_path / "shape.json"
    wrong_shape.write_text(json.dumps(["a", "b"]))
    with pytest.raises(ValueError, match="mapping"):
        load_sobit_taxonomy(wrong_shape)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_sobit_taxonomy(tmp_path / "missing.json")


def test_guilbeault_categories_one_per_line(tmp_path):
    path = tmp_path / "categories.txt"
    path.write_text("Male\nabandoned infant\nable seaman\nmale\n")
    assert load_guilbeault_categories(path) == ["male", "abandoned infant", "able seaman"]


def test_the_papers_sobit_taxonomy_loads_when_present():
    taxonomy = load_sobit_taxonomy(paper_lexicon("sobit_taxonomy.json"))
    assert len(taxonomy) == 9
    assert len(taxonomy["Criminal justice"]) == 28
    assert all(words and all(w == w.lower() for w in words) for words in taxonomy.values())


def test_the_papers_guilbeault_categories_load_when_present():
    categories = load_guilbeault_categories(paper_lexicon("guilbeault_social_categories.txt"))
    assert len(categories) > 3000 and len(categories) == len(set(categories))


def test_term_pattern_word_and_substring_modes():
    word = term_pattern(["hot", "f*ck", "armed robbery"])
    substring = term_pattern(["hot"], word_boundary=False)
    assert not word.search("photo of a hotel lobby, a great shot")
    assert word.search("hot summer") and word.search("#hot") and word.search("what the f*ck")
    assert word.search("news: armed robbery downtown")
    assert substring.search("photo") and substring.search("hotel")
    assert not term_pattern([]).search("anything")
