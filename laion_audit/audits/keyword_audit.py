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

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from .text_matching import MODES, TermMatcher

MISSING_FLAG = "missing"
MAX_EXAMPLES = 5
MAX_EXAMPLE_CHARS = 80

_COLUMN_ALIASES = {
    "text": ("caption", "TEXT", "text"),
    "url": ("url", "URL"),
    "nsfw": ("nsfw", "NSFW"),
}


def _to_arrow(table: Any) -> pa.Table:
    if isinstance(table, pa.Table):
        return table
    if hasattr(table, "to_arrow"):  # polars DataFrame
        return table.to_arrow()
    raise TypeError(f"expected a pyarrow Table or polars DataFrame, got {type(table).__name__}")


def _pick(table: pa.Table, role: str) -> list:
    for name in _COLUMN_ALIASES[role]:
        if name in table.column_names:
            return table.column(name).to_pylist()
    if role == "text":
        raise KeyError(f"table has no caption column (looked for {_COLUMN_ALIASES['text']})")
    return [None] * table.num_rows


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def _flag_counts(flags: Sequence[str | None], rows: Sequence[int]) -> dict[str, int]:
    counts = Counter(flags[i] if flags[i] is not None else MISSING_FLAG for i in rows)
    return dict(counts.most_common())


def _inflation_examples(term: str, texts: Sequence[str | None], rows: Sequence[int]) -> list[list]:
    """The commonest enclosing strings of ``term`` in ``rows`` that are not the term standing alone."""
    around = re.compile(r"\w*" + re.escape(term) + r"\w*")
    counts: Counter[str] = Counter()
    for i in rows:
        text = texts[i]
        if not text:
            continue
        for m in around.finditer(text.lower()):
            if m.group(0) != term:
                counts[m.group(0)[:MAX_EXAMPLE_CHARS]] += 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [[s, n] for s, n in ranked[:MAX_EXAMPLES]]


def _audit_mode(mode, search_strings, nsfw_keywords, texts, urls, flags) -> dict[str, Any]:
    search_hits = TermMatcher(search_strings, mode).match_column(texts)
    kw_text = TermMatcher(nsfw_keywords, mode).match_column(texts)
    kw_url = TermMatcher(nsfw_keywords, mode).match_column(urls)
    keywords = TermMatcher(nsfw_keywords, mode).terms
    rows_by_term: dict[str, list[int]] = {s: [] for s in TermMatcher(search_strings, mode).terms}
    for i, hits in enumerate(search_hits):
        for s in hits:
            rows_by_term[s].append(i)
    per_term = {}
    for s, rows in rows_by_term.items():
        nsfw_rows = [i for i in rows if kw_text[i] or kw_url[i]]
        breakdown = {k: {"text": 0, "url": 0} for k in keywords}
        for i in rows:
            for k in kw_text[i]:
                breakdown[k]["text"] += 1
            for k in kw_url[i]:
                breakdown[k]["url"] += 1
        per_term[s] = {
            "n_match": len(rows),
            "n_nsfw": len(nsfw_rows),
            "pct_nsfw": _pct(len(nsfw_rows), len(rows)),
            "nsfw_flag_counts": _flag_counts(flags, rows),
            "nsfw_flag_counts_nsfw": _flag_counts(flags, nsfw_rows),
            "keywords": breakdown,
        }
    keyword_rows = {
        "text": {k: sum(k in hits for hits in kw_text) for k in keywords},
        "url": {k: sum(k in hits for hits in kw_url) for k in keywords},
    }
    return {
        "search_strings": per_term,
        "keyword_rows": keyword_rows,
        "_hits": (search_hits, kw_text, kw_url),
    }


def keyword_audit(table: Any, search_strings: Sequence[str], nsfw_keywords: Sequence[str]) -> dict[str, Any]:
    """Table 1 in both match modes plus an ``inflation`` section (substring minus word).

    ``table``: pyarrow Table or polars DataFrame with a caption column (``caption`` or ``TEXT``), and
    optionally ``url``/``URL`` and ``nsfw``/``NSFW`` (the dataset's flag; absent or null -> "missing").
    """
    arrow = _to_arrow(table)
    texts, urls, flags = _pick(arrow, "text"), _pick(arrow, "url"), _pick(arrow, "nsfw")
    modes = {m: _audit_mode(m, search_strings, nsfw_keywords, texts, urls, flags) for m in MODES}
    sub_hits, sub_kw_text, sub_kw_url = modes["substring"].pop("_hits")
    word_hits, word_kw_text, word_kw_url = modes["word"].pop("_hits")

    inflation: dict[str, Any] = {"search_strings": {}, "nsfw_keywords": {}}
    for s in modes["substring"]["search_strings"]:
        sub, word = modes["substring"]["search_strings"][s], modes["word"]["search_strings"][s]
        only_sub = [i for i in range(len(texts)) if s in sub_hits[i] and s not in word_hits[i]]
        inflation["search_strings"][s] = {
            "n_match_substring": sub["n_match"],
            "n_match_word": word["n_match"],
            "n_match_extra": sub["n_match"] - word["n_match"],
            "n_nsfw_substring": sub["n_nsfw"],
            "n_nsfw_word": word["n_nsfw"],
            "n_nsfw_extra": sub["n_nsfw"] - word["n_nsfw"],
            "examples": _inflation_examples(s, texts, only_sub),
        }
    for k in modes["substring"]["keyword_rows"]["text"]:
        entry: dict[str, Any] = {}
        examples: Counter[str] = Counter()
        for field, values, sub_kw, word_kw in (
            ("text", texts, sub_kw_text, word_kw_text),
            ("url", urls, sub_kw_url, word_kw_url),
        ):
            n_sub = modes["substring"]["keyword_rows"][field][k]
            n_word = modes["word"]["keyword_rows"][field][k]
            entry[f"{field}_substring"] = n_sub
            entry[f"{field}_word"] = n_word
            entry[f"{field}_extra"] = n_sub - n_word
            only_sub = [i for i in range(len(values)) if k in sub_kw[i] and k not in word_kw[i]]
            for s, n in _inflation_examples(k, values, only_sub):
                examples[s] += n
        entry["examples"] = [[s, n] for s, n in sorted(examples.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_EXAMPLES]]
        inflation["nsfw_keywords"][k] = entry

    return {
        "n_rows": len(texts),
        "search_strings": list(modes["substring"]["search_strings"]),
        "nsfw_keywords": list(modes["substring"]["keyword_rows"]["text"]),
        "modes": modes,
        "inflation": inflation,
    }


def _fmt_flags(counts: dict[str, int]) -> str:
    return "{" + ", ".join(f"'{k}': {v}" for k, v in counts.items()) + "}"


def render_keyword_audit_markdown(result: dict[str, Any]) -> str:
    """Table-1-style markdown per mode, then the substring-vs-word inflation lines."""
    lines = [f"Keyword audit over {result['n_rows']} rows (Birhane et al. 2021, Table 1 procedure).", ""]
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
    lines.append("**Substring inflation** (substring minus word)")
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
