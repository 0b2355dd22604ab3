"""keyword_audit on a crafted table with every count worked out by hand, plus a run on the shared sample."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_audit.audits.keyword_audit import keyword_audit, render_keyword_audit_markdown

NSFW = ["porn", "hot", "adult", "xxx", "sex", "f*ck", "rape"]
SEARCH = ["desi", "nun"]

ROWS = [  # caption, url, dataset NSFW flag
    ("Desi bride", "http://a.com/1.jpg", "UNLIKELY"),  # 0 desi (both)
    ("Design week", "http://a.com/hotel.jpg", "UNLIKELY"),  # 1 desi substring only; URL 'hot' substring only
    ("desi girl hot", "http://a.com/2.jpg", "UNSURE"),  # 2 desi both; 'hot' TEXT both
    ("Desi xxx", "http://porn.com/3.jpg", None),  # 3 desi both; 'xxx' TEXT, 'porn' URL
    ("Nun costume", "http://a.com/adult/4.jpg", "NSFW"),  # 4 nun both; 'adult' URL
    ("Nunavut photo", "http://a.com/5.jpg", "UNLIKELY"),  # 5 nun substring only; 'hot' in 'photo'
    ("Designer sex toys", None, "NSFW"),  # 6 desi substring only; 'sex' TEXT
    (None, "http://sex.com", "UNSURE"),  # 7 no caption: never matches a search string
    ("F*ck nun", "http://a.com/8.jpg", "NSFW"),  # 8 nun both; 'f*ck' literal
]


def _table() -> pa.Table:
    return pa.table(
        {"caption": [r[0] for r in ROWS], "url": [r[1] for r in ROWS], "nsfw": [r[2] for r in ROWS]}
    )


def test_substring_mode_by_hand():
    res = keyword_audit(_table(), SEARCH, NSFW)
    assert res["n_rows"] == 9
    desi = res["modes"]["substring"]["search_strings"]["desi"]
    assert (desi["n_match"], desi["n_nsfw"], desi["pct_nsfw"]) == (5, 4, 80.0)
    assert desi["nsfw_flag_counts"] == {"UNLIKELY": 2, "UNSURE": 1, "missing": 1, "NSFW": 1}
    assert desi["nsfw_flag_counts_nsfw"] == {"UNLIKELY": 1, "UNSURE": 1, "missing": 1, "NSFW": 1}
    kw = desi["keywords"]
    assert kw["hot"] == {"text": 1, "url": 1}
    assert kw["xxx"] == {"text": 1, "url": 0}
    assert kw["porn"] == {"text": 0, "url": 1}
    assert kw["sex"] == {"text": 1, "url": 0}
    assert kw["adult"] == kw["rape"] == kw["f*ck"] == {"text": 0, "url": 0}
    nun = res["modes"]["substring"]["search_strings"]["nun"]
    assert (nun["n_match"], nun["n_nsfw"], nun["pct_nsfw"]) == (3, 3, 100.0)
    assert nun["nsfw_flag_counts"] == {"NSFW": 2, "UNLIKELY": 1}
    assert nun["keywords"]["adult"] == {"text": 0, "url": 1}
    assert nun["keywords"]["f*ck"] == {"text": 1, "url": 0}


def test_word_mode_by_hand():
    res = keyword_audit(_table(), SEARCH, NSFW)
    desi = res["modes"]["word"]["search_strings"]["desi"]
    assert (desi["n_match"], desi["n_nsfw"], desi["pct_nsfw"]) == (3, 2, 66.67)
    assert desi["nsfw_flag_counts"] == {"UNLIKELY": 1, "UNSURE": 1, "missing": 1}
    assert desi["nsfw_flag_counts_nsfw"] == {"UNSURE": 1, "missing": 1}
    assert desi["keywords"]["hot"] == {"text": 1, "url": 0}
    nun = res["modes"]["word"]["search_strings"]["nun"]
    assert (nun["n_match"], nun["n_nsfw"], nun["pct_nsfw"]) == (2, 2, 100.0)
    assert nun["nsfw_flag_counts"] == {"NSFW": 2}


def test_inflation_section():
    inf = keyword_audit(_table(), SEARCH, NSFW)["inflation"]
    assert inf["search_strings"]["desi"] == {
        "n_match_substring": 5, "n_match_word": 3, "n_match_extra": 2,
        "n_nsfw_substring": 4, "n_nsfw_word": 2, "n_nsfw_extra": 2,
        "examples": [["design", 1], ["designer", 1]],
    }
    assert inf["search_strings"]["nun"]["n_match_extra"] == 1
    assert inf["search_strings"]["nun"]["examples"] == [["nunavut", 1]]
    hot = inf["nsfw_keywords"]["hot"]
    assert (hot["text_substring"], hot["text_word"], hot["text_extra"]) == (2, 1, 1)
    assert (hot["url_substring"], hot["url_word"], hot["url_extra"]) == (1, 0, 1)
    assert hot["examples"] == [["hotel", 1], ["photo", 1]]
    sex = inf["nsfw_keywords"]["sex"]
    assert (sex["text_extra"], sex["url_substring"], sex["url_word"]) == (0, 1, 1)


def test_polars_input_upper_case_columns_and_missing_flag_column():
    df = pl.DataFrame({"TEXT": [r[0] for r in ROWS], "URL": [r[1] for r in ROWS]})
    res = keyword_audit(df, SEARCH, NSFW)
    desi = res["modes"]["substring"]["search_strings"]["desi"]
    assert (desi["n_match"], desi["n_nsfw"]) == (5, 4)
    assert desi["nsfw_flag_counts"] == {"missing": 5}


def test_empty_match_and_markdown():
    res = keyword_audit(_table(), ["latina"], NSFW)
    row = res["modes"]["word"]["search_strings"]["latina"]
    assert (row["n_match"], row["n_nsfw"], row["pct_nsfw"]) == (0, 0, None)
    md = render_keyword_audit_markdown(keyword_audit(_table(), SEARCH, NSFW))
    assert "| desi | 5 | (4, 80.00%) |" in md
    assert "| desi | 3 | (2, 66.67%) | {'UNSURE': 1, 'missing': 1} |" in md
    assert "'design' (1)" in md and "'photo' (1)" in md
    assert md.count("| Search string |") == 2


def test_shared_laion_text_sample():
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "laion_metadata_sample" / "laion400m_text_sample_1000.parquet"
    if not path.is_file():
        pytest.skip(f"shared sample not present: {path}")
    table = pq.read_table(path)
    assert {"URL", "TEXT"} <= set(table.column_names)
    search = ["desi", "nun", "latina", "asian", "woman", "man"]
    res = keyword_audit(table, search, NSFW)
    assert res["n_rows"] == table.num_rows
    has_flag = "NSFW" in table.column_names
    for term in search:
        sub = res["modes"]["substring"]["search_strings"][term]
        word = res["modes"]["word"]["search_strings"][term]
        assert sub["n_match"] >= word["n_match"]
        assert sub["n_nsfw"] >= word["n_nsfw"]
        for row in (sub, word):
            assert 0 <= row["n_nsfw"] <= row["n_match"]
            assert sum(row["nsfw_flag_counts"].values()) == row["n_match"]
            assert sum(row["nsfw_flag_counts_nsfw"].values()) == row["n_nsfw"]
            if not has_flag and row["n_match"]:
                assert set(row["nsfw_flag_counts"]) == {"missing"}
        inf = res["inflation"]["search_strings"][term]
        assert inf["n_match_extra"] == sub["n_match"] - word["n_match"] >= 0
        assert len(inf["examples"]) <= 5 and all(len(s) <= 80 for s, _ in inf["examples"])
    for k, inf in res["inflation"]["nsfw_keywords"].items():
        assert inf["text_extra"] >= 0 and inf["url_extra"] >= 0
    assert res["modes"]["substring"]["search_strings"]["man"]["n_match"] > res["modes"]["word"]["search_strings"]["man"]["n_match"]
