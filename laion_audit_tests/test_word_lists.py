import json

import pytest

from laion_audit.lexical import (
    load_guilbeault_categories,
    load_identity_terms,
    load_sobit_taxonomy,
    load_word_list,
)


def test_shipped_lists_load_by_name():
    assert load_word_list("nsfw_keywords_birhane2021") == ["porn", "hot", "adult", "xxx", "sex", "f*ck", "rape"]
    assert load_word_list("keyword_audit_search_strings") == ["desi", "nun", "latina"]
    crime = load_word_list("crime_words")
    assert "armed robbery" in crime and "shot" not in crime and len(crime) == len(set(crime))
    identity = load_identity_terms()
    assert set(identity["race"]) == {"white", "black", "east_asian", "latino", "middle_eastern", "south_asian",
                                     "southeast_asian"}


def test_user_lists_load_by_path(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("# comment\nFoo\n\nbar\nfoo\n")
    assert load_word_list(path) == ["foo", "bar"]
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_word_list(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="no shipped list"):
        load_word_list("no_such_list")


def test_sobit_taxonomy_from_json_and_python_without_executing(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"Criminal justice": ["Thief", "inmate"]}))
    assert load_sobit_taxonomy(tmp_path / "t.json") == {"Criminal justice": ["thief", "inmate"]}
    (tmp_path / "t.py").write_text("import os\nsobit_taxonomy = {'Religion': ['Nun']}\nos.system('false')\n")
    assert load_sobit_taxonomy(tmp_path / "t.py") == {"Religion": ["nun"]}


def test_paper_lexicons_when_present(shared_data):
    taxonomy = load_sobit_taxonomy(shared_data / "paper_lexicons" / "sobit_taxonomy.json")
    assert len(taxonomy) == 9
    categories = load_guilbeault_categories(shared_data / "paper_lexicons" / "guilbeault_social_categories.txt")
    assert len(categories) > 3000
