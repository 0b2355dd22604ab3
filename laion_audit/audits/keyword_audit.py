"""Birhane et al. (2021) Table 1: how often captions matching an identity search string carry NSFW keywords.

Procedure (paper_methods §9): select rows whose TEXT contains the search string; call a row NSFW if any of the
filter keywords (``porn, hot, adult, xxx, sex, f*ck, rape``) occurs in TEXT or URL; report N_match,
(N_nsfw, %) and the distribution of the dataset's own NSFW flag. The paper's "simple string match" is a
substring test, which counts "Design" for "desi" and "photo"/"hotel" for "hot". So the audit runs in both
modes (``substring`` and whole-``word``, applied to the search strings AND the filter keywords) and reports the
difference with the commonest strings that only the substring rule counted, making the inflation visible next
to the reproduced numbers.

Flag distributions are given twice: over all matches (``nsfw_flag_counts``) and over the keyword-flagged
matches (``nsfw_flag_counts_nsfw``); in the published Table 1 the flag counts sum to N_nsfw (11782 for
"Desi"), i.e. the latter, which is what the markdown rendering shows. Null or absent flags count as "missing".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .keyword_counts import audit_from_counts, keyword_counts, reduce_keyword_counts
from .text_matching import MODES


def keyword_audit(table: Any, search_strings: Sequence[str], nsfw_keywords: Sequence[str],
                  nsfw_list: str = "nsfw_keywords") -> dict[str, Any]:
    """Table 1 in both match modes plus an ``inflation`` section (substring minus word), over one table.

    The dataset asset computes the same from per-shard counts (keyword_counts.py); this is that path on a
    single table. ``table``: pyarrow Table or polars DataFrame with a caption column (``caption`` or ``TEXT``),
    and optionally ``url``/``URL`` and ``nsfw``/``NSFW`` (the dataset's flag; absent or null -> "missing").
    """
    counts = keyword_counts(table, search_strings, {nsfw_list: nsfw_keywords})
    return audit_from_counts(reduce_keyword_counts([counts]), nsfw_list, search_strings, nsfw_keywords)


KEYWORD_TABLE_COLUMNS = ["nsfw_list", "search_string", "mode", "n_match", "n_nsfw", "pct_nsfw"]


def keyword_table_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per NSFW list, search string and match mode: the Table 1 figures as a flat table."""
    return [{"nsfw_list": list_name, "search_string": term, "mode": mode, "n_match": row["n_match"],
             "n_nsfw": row["n_nsfw"], "pct_nsfw": row["pct_nsfw"]}
            for list_name, result in results.items() for mode in MODES
            for term, row in result["modes"][mode]["search_strings"].items()]


def _fmt_flags(counts: dict[str, int]) -> str:
    return "{" + ", ".join(f"'{k}': {v}" for k, v in counts.items()) + "}"


def render_keyword_audit_markdown(result: dict[str, Any]) -> str:
    """Table-1-style markdown per mode, then the substring-vs-word inflation lines."""
    lines = [f"Keyword audit over {result['n_rows']} rows (Birhane et al. 2021, Table 1 procedure), NSFW keywords: "
             f"{result.get('nsfw_list', 'given list')} ({', '.join(result['nsfw_keywords'])}).", ""]
    for mode in MODES:
        lines += [
            f"**{mode} match** (search strings and NSFW keywords; keyword in TEXT or URL)",
            "",
            "| Search string | N_match | (N_nsfw, %_nsfw) | NSFW-flag-values (keyword-flagged rows) |",
            "|---|---:|---|---|",
        ]
        for s, row in result["modes"][mode]["search_strings"].items():
            pct = "n/a" if row["pct_nsfw"] is None else f"{row['pct_nsfw']:.2f}%"
            lines.append(f"| {s} | {row['n_match']} | ({row['n_nsfw']}, {pct}) | {_fmt_flags(row['nsfw_flag_counts_nsfw'])} |")
        lines.append("")
    lines.append("**Substring inflation** (substring minus word; examples: the most frequent of a seeded sample of "
                 "enclosing strings, exact counts)")
    lines.append("")
    for s, inf in result["inflation"]["search_strings"].items():
        ex = ", ".join(f"{e!r} ({n})" for e, n in inf["examples"]) or "none"
        lines.append(
            f"- search '{s}': N_match +{inf['n_match_extra']} ({inf['n_match_substring']} vs {inf['n_match_word']}), "
            f"N_nsfw +{inf['n_nsfw_extra']}; e.g. {ex}"
        )
    for k, inf in result["inflation"]["nsfw_keywords"].items():
        ex = ", ".join(f"{e!r} ({n})" for e, n in inf["examples"]) or "none"
        lines.append(
            f"- keyword '{k}': TEXT +{inf['text_extra']} ({inf['text_substring']} vs {inf['text_word']}), "
            f"URL +{inf['url_extra']} ({inf['url_substring']} vs {inf['url_word']}); e.g. {ex}"
        )
    return "\n".join(lines) + "\n"
