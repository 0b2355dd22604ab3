"""The keyword audit as additive per-shard counts, so the dataset table is a sum over shards.

Why: the audit used to hold every caption of the dataset in one process (about 1 KB of Python objects per row,
some 430 GB for LAION-400M). Every number of Birhane et al.'s Table 1 is a count, and counts add across shards,
so each shard writes its counts once (the `keyword_counts` asset) and the dataset audit sums them
(:func:`reduce_keyword_counts`); memory depends on the number of search strings, keywords and flag values.

The examples of substring inflation (the enclosing strings that only the substring rule counts, e.g. "design"
for "desi") cannot be "the commonest over the dataset" without holding every distinct string. They are a seeded,
bounded sample instead: per term, the ``EXAMPLES_KEPT`` distinct strings with the smallest seeded hash (a
bottom-k sketch). A string in the dataset's bottom-k is in the bottom-k of every shard where it occurs, so its
summed count is exact; the report shows the most frequent strings of that sample.

One long table per shard; ``section`` tells counts from examples:

* ``count`` rows: (nsfw_list, mode, metric, search, keyword, field, flag) -> count, with metrics
  ``n_rows``; per search string ``n_match``, ``flag_match`` (per flag value), and per NSFW list ``n_nsfw``,
  ``flag_nsfw`` and ``kw_in_match`` (per keyword and field); per list, keyword and field ``kw_rows``.
* ``example`` rows: (nsfw_list, term_kind, term, example, example_hash) -> count, substring-only hits.

Columns that do not apply to a row are null.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from .report_inputs import reduce_frames
from .text_matching import MODES, TermMatcher

MISSING_FLAG = "missing"
EXAMPLES_KEPT = 20
EXAMPLES_SHOWN = 5
MAX_EXAMPLE_CHARS = 80
SCHEMA = {"section": pl.String, "nsfw_list": pl.String, "mode": pl.String, "metric": pl.String,
          "search": pl.String, "keyword": pl.String, "field": pl.String, "flag": pl.String,
          "term_kind": pl.String, "example": pl.String, "example_hash": pl.UInt64, "count": pl.Int64}
KEYS = [c for c in SCHEMA if c != "count"]

_COLUMN_ALIASES = {"text": ("caption", "TEXT", "text"), "url": ("url", "URL"), "nsfw": ("nsfw", "NSFW")}


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


def example_hash(text: str, seed: int) -> int:
    """A seeded 64-bit hash, stable across processes and machines (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{text}".encode(), digest_size=8).digest(), "big")


def _enclosing(term: str, texts: Sequence[str | None], rows: Iterable[int]) -> Counter[str]:
    """The enclosing words of ``term`` in ``rows`` that are not the term standing alone."""
    around = re.compile(r"\w*" + re.escape(term) + r"\w*")
    counts: Counter[str] = Counter()
    for i in rows:
        text = texts[i]
        if text:
            for m in around.finditer(text.lower()):
                if m.group(0) != term:
                    counts[m.group(0)[:MAX_EXAMPLE_CHARS]] += 1
    return counts


def _bottom_k(counts: Mapping[str, int], seed: int, k: int = EXAMPLES_KEPT) -> list[tuple[str, int, int]]:
    ranked = sorted((example_hash(s, seed), s, n) for s, n in counts.items())
    return [(s, h, n) for h, s, n in ranked[:k]]


def keyword_counts(table: Any, search_strings: Sequence[str], nsfw_lists: Mapping[str, Sequence[str]],
                   *, seed: int = 0) -> pl.DataFrame:
    """The counts (and example sketch) of one shard's captions; see the module docstring for the layout.

    ``table``: pyarrow Table or polars DataFrame with a caption column (``caption`` or ``TEXT``), and optionally
    ``url``/``URL`` and ``nsfw``/``NSFW`` (the dataset's flag; absent or null -> "missing").
    """
    arrow = _to_arrow(table)
    texts, urls = _pick(arrow, "text"), _pick(arrow, "url")
    flags = [MISSING_FLAG if f is None else str(f) for f in _pick(arrow, "nsfw")]
    rows: list[dict[str, Any]] = [{"section": "count", "metric": "n_rows", "count": len(texts)}]
    search_hits = {mode: TermMatcher(search_strings, mode).match_column(texts) for mode in MODES}
    terms = TermMatcher(search_strings, "word").terms

    # The rows each search string matches, per mode: shared by the search-string counts and every NSFW list.
    matched = {(mode, s): [i for i, hits in enumerate(search_hits[mode]) if s in hits] for mode in MODES for s in terms}
    for mode in MODES:
        for s in terms:
            rows.append({"section": "count", "mode": mode, "metric": "n_match", "search": s,
                         "count": len(matched[(mode, s)])})
            rows += [{"section": "count", "mode": mode, "metric": "flag_match", "search": s, "flag": f, "count": n}
                     for f, n in Counter(flags[i] for i in matched[(mode, s)]).items()]
    only_substring = {s: [i for i in range(len(texts)) if s in search_hits["substring"][i]
                          and s not in search_hits["word"][i]] for s in terms}
    for s in terms:
        rows += _example_rows(None, "search", s, _enclosing(s, texts, only_substring[s]), seed)

    for list_name, keywords in nsfw_lists.items():
        rows += _nsfw_rows(list_name, keywords, terms, matched, texts, urls, flags, seed)
    return pl.DataFrame([{**dict.fromkeys(KEYS), **row} for row in rows], schema=SCHEMA, orient="row")


def _nsfw_rows(list_name, keywords, terms, matched, texts, urls, flags, seed) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    base = {"section": "count", "nsfw_list": list_name}
    hits: dict[tuple[str, str], list[list[str]]] = {}
    for mode in MODES:
        matcher = TermMatcher(keywords, mode)
        hits[(mode, "text")], hits[(mode, "url")] = matcher.match_column(texts), matcher.match_column(urls)
        for field in ("text", "url"):
            per_keyword = Counter(k for row in hits[(mode, field)] for k in row)
            rows += [{**base, "mode": mode, "metric": "kw_rows", "keyword": k, "field": field, "count": per_keyword[k]}
                     for k in matcher.terms]
        for s in terms:
            nsfw_rows = [i for i in matched[(mode, s)] if hits[(mode, "text")][i] or hits[(mode, "url")][i]]
            rows.append({**base, "mode": mode, "metric": "n_nsfw", "search": s, "count": len(nsfw_rows)})
            rows += [{**base, "mode": mode, "metric": "flag_nsfw", "search": s, "flag": f, "count": n}
                     for f, n in Counter(flags[i] for i in nsfw_rows).items()]
            for field in ("text", "url"):
                per_keyword = Counter(k for i in matched[(mode, s)] for k in hits[(mode, field)][i])
                rows += [{**base, "mode": mode, "metric": "kw_in_match", "search": s, "keyword": k, "field": field,
                          "count": n} for k, n in per_keyword.items()]
    for k in TermMatcher(keywords, "word").terms:
        enclosing: Counter[str] = Counter()
        for field, values in (("text", texts), ("url", urls)):
            only = [i for i in range(len(values)) if k in hits[("substring", field)][i]
                    and k not in hits[("word", field)][i]]
            enclosing.update(_enclosing(k, values, only))
        rows += _example_rows(list_name, "keyword", k, enclosing, seed)
    return rows


def _example_rows(list_name: str | None, kind: str, term: str, counts: Mapping[str, int],
                  seed: int) -> list[dict[str, Any]]:
    return [{"section": "example", "nsfw_list": list_name, "term_kind": kind, "search": term if kind == "search"
             else None, "keyword": term if kind == "keyword" else None, "example": s, "example_hash": h, "count": n}
            for s, h, n in _bottom_k(counts, seed)]


def reduce_keyword_counts(parts: Iterable[pl.DataFrame] | pl.LazyFrame, batch: int = 256) -> pl.DataFrame:
    """Sum shard counts; keep each term's bottom-k example strings (exact counts, see the module docstring)."""
    return reduce_frames(parts, SCHEMA, _fold_counts, batch)


def _fold_counts(frame: pl.LazyFrame) -> pl.LazyFrame:
    summed = frame.group_by(KEYS).agg(pl.col("count").sum())
    examples = summed.filter(pl.col("section") == "example").sort("example_hash").group_by(
        "nsfw_list", "term_kind", "search", "keyword").head(EXAMPLES_KEPT)
    return pl.concat([summed.filter(pl.col("section") == "count"), examples.select(summed.collect_schema().names())]
                     ).select(list(SCHEMA)).cast(SCHEMA)


def _where(frame: pl.DataFrame, **where: str | None) -> pl.DataFrame:
    """The rows whose columns equal the given values (None: the column is null)."""
    for column, value in where.items():
        frame = frame.filter(pl.col(column).is_null() if value is None else pl.col(column) == value)
    return frame


def _count(counts: pl.DataFrame, **where: str | None) -> int:
    return int(_where(counts, **where)["count"].sum())


def _flags(counts: pl.DataFrame, **where: str | None) -> dict[str, int]:
    rows = _where(counts, **where).select("flag", "count").sort(["count", "flag"], descending=[True, False])
    return {flag: int(n) for flag, n in rows.iter_rows() if n}


def _shown(examples: pl.DataFrame, **where: str | None) -> list[list]:
    ranked = (_where(examples, **where).select("example", "count")
              .sort(["count", "example"], descending=[True, False]).head(EXAMPLES_SHOWN))
    return [[s, int(n)] for s, n in ranked.iter_rows()]


def audit_from_counts(reduced: pl.DataFrame, nsfw_list: str, search_strings: Sequence[str],
                      nsfw_keywords: Sequence[str]) -> dict[str, Any]:
    """Table 1 in both match modes plus the inflation section, for one NSFW list, from reduced counts."""
    counts = reduced.filter(pl.col("section") == "count")
    examples = reduced.filter(pl.col("section") == "example")
    terms = TermMatcher(search_strings, "word").terms
    keywords = TermMatcher(nsfw_keywords, "word").terms
    modes: dict[str, Any] = {}
    for mode in MODES:
        per_term = {}
        for s in terms:
            n_match = _count(counts, metric="n_match", mode=mode, search=s)
            n_nsfw = _count(counts, metric="n_nsfw", mode=mode, search=s, nsfw_list=nsfw_list)
            per_term[s] = {
                "n_match": n_match,
                "n_nsfw": n_nsfw,
                "pct_nsfw": round(100.0 * n_nsfw / n_match, 2) if n_match else None,
                "nsfw_flag_counts": _flags(counts, metric="flag_match", mode=mode, search=s),
                "nsfw_flag_counts_nsfw": _flags(counts, metric="flag_nsfw", mode=mode, search=s, nsfw_list=nsfw_list),
                "keywords": {k: {field: _count(counts, metric="kw_in_match", mode=mode, search=s, keyword=k,
                                               field=field, nsfw_list=nsfw_list) for field in ("text", "url")}
                             for k in keywords},
            }
        modes[mode] = {"search_strings": per_term, "keyword_rows": {
            field: {k: _count(counts, metric="kw_rows", mode=mode, keyword=k, field=field, nsfw_list=nsfw_list)
                    for k in keywords} for field in ("text", "url")}}

    inflation: dict[str, Any] = {"search_strings": {}, "nsfw_keywords": {}}
    for s in terms:
        sub, word = modes["substring"]["search_strings"][s], modes["word"]["search_strings"][s]
        inflation["search_strings"][s] = {
            "n_match_substring": sub["n_match"], "n_match_word": word["n_match"],
            "n_match_extra": sub["n_match"] - word["n_match"],
            "n_nsfw_substring": sub["n_nsfw"], "n_nsfw_word": word["n_nsfw"],
            "n_nsfw_extra": sub["n_nsfw"] - word["n_nsfw"],
            "examples": _shown(examples, term_kind="search", search=s),
        }
    for k in keywords:
        entry: dict[str, Any] = {}
        for field in ("text", "url"):
            n_sub = modes["substring"]["keyword_rows"][field][k]
            n_word = modes["word"]["keyword_rows"][field][k]
            entry.update({f"{field}_substring": n_sub, f"{field}_word": n_word, f"{field}_extra": n_sub - n_word})
        entry["examples"] = _shown(examples, term_kind="keyword", keyword=k, nsfw_list=nsfw_list)
        inflation["nsfw_keywords"][k] = entry
    return {"n_rows": _count(counts, metric="n_rows"), "search_strings": terms, "nsfw_keywords": keywords,
            "nsfw_list": nsfw_list, "modes": modes, "inflation": inflation}
