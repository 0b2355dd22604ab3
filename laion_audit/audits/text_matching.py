"""Matching term lists against captions and URLs, in two modes whose difference is itself a finding.

* ``substring``: ``term in text.lower()``. This is Birhane et al.'s "simple string match" (paper_methods §9),
  kept so their Table 1 can be reproduced; it counts "design" as a hit for "desi" and "photo" for "hot".
* ``word``: the term must not touch a word character on either side (``(?<!\\w)term(?!\\w)``), so multi-word
  terms match as phrases and punctuation-bearing terms such as ``f*ck`` are matched literally (escaped).

Both modes lower-case the text and the terms and compare without ``re.IGNORECASE``, so a hit is exactly a
``term in text.lower()`` hit (substring) or that plus the boundary test (word), and a hit's text is the term.

Columns go through a multi-pattern prefilter first: one Aho-Corasick pass (polars ``str.extract_many``, in
Rust, overlapping) lists the terms occurring in each lower-cased text as substrings. That list is the exact
substring-mode answer; in word mode a hit is also a substring hit of the same term in the same lower-cased
text, so only the listed terms of the listed rows get their boundary regex. Most captions hit nothing and
cost no Python work beyond lower-casing. The result equals testing each term on its own, which the tests check.

Exclusion phrases (``exclusions``) remove hits that are part of a longer name: an occurrence of a term counts
only when it does not lie wholly inside an occurrence of an exclusion phrase (matched in the same mode), so
"theft" in "Grand Theft Auto" does not count while "theft" elsewhere in the same caption still does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import polars as pl

MODES = ("substring", "word")


def _dedupe(terms: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for term in terms:
        if term is None:
            continue
        term = str(term).lower()
        if term.strip():
            seen.setdefault(term, None)
    return list(seen)


def term_pattern(term: str, mode: str) -> str:
    """The regex source for one lower-cased term in ``mode`` (to be searched in lower-cased text)."""
    if mode == "substring":
        return re.escape(term)
    if mode == "word":
        return r"(?<!\w)" + re.escape(term) + r"(?!\w)"
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def lower_all(texts: Sequence[str | None]) -> list[str | None]:
    """``text.lower()`` per text (None and "" stay falsy), shared by several matchers over one column."""
    return [text.lower() if text else None for text in texts]


def contains_any(lowered: Sequence[str | None], phrases: Sequence[str]) -> list[bool]:
    """Whether each (lower-cased) text contains any of ``phrases`` as a plain substring."""
    if not phrases or not lowered:
        return [False] * len(lowered)
    hits = pl.Series(values=lowered, dtype=pl.String).str.contains_any(list(phrases))
    return [bool(hit) for hit in hits.to_list()]


class TermMatcher:
    """Which of ``terms`` occur in a text; ``matches`` returns them in list order, each once.

    ``exclusions``: phrases inside which a term's occurrence does not count (see the module docstring).
    """

    def __init__(self, terms: Iterable[str], mode: str = "word", exclusions: Iterable[str] = ()):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.terms: list[str] = _dedupe(terms)
        self.exclusions: list[str] = _dedupe(exclusions)
        self._order = {term: i for i, term in enumerate(self.terms)}
        self._single = {term: re.compile(term_pattern(term, mode)) for term in self.terms}
        # Every occurrence, overlapping ones included (zero-width lookahead), for the span test of exclusions.
        self._occurrences = {t: re.compile("(?=" + term_pattern(t, mode) + ")") for t in self.terms + self.exclusions}

    def __repr__(self) -> str:
        return f"TermMatcher({len(self.terms)} terms, {len(self.exclusions)} exclusions, mode={self.mode!r})"

    def matches(self, text: str | None) -> list[str]:
        if not text or not self.terms:
            return []
        lowered = text.lower()
        hits = self._exact(lowered, [term for term in self.terms if term in lowered])
        if hits and self.exclusions and any(phrase in lowered for phrase in self.exclusions):
            hits = self._outside_exclusions(lowered, hits)
        return hits

    def _exact(self, lowered: str, present: Sequence[str]) -> list[str]:
        """The hits among ``present`` (terms occurring in ``lowered`` as substrings), in list order, each once."""
        if len(present) == 1:  # the common case: one term, nothing to order
            term = present[0]
            return [term] if self.mode == "substring" or self._single[term].search(lowered) else []
        hits = sorted(set(present), key=self._order.__getitem__)
        if self.mode == "word":
            single = self._single
            hits = [term for term in hits if single[term].search(lowered)]
        return hits

    def _spans(self, phrase: str, lowered: str) -> list[tuple[int, int]]:
        # Terms are literal, so an occurrence spans exactly len(phrase) characters of the lowered text.
        return [(m.start(), m.start() + len(phrase)) for m in self._occurrences[phrase].finditer(lowered)]

    def _outside_exclusions(self, lowered: str, hits: list[str]) -> list[str]:
        excluded = [span for phrase in self.exclusions if phrase in lowered for span in self._spans(phrase, lowered)]
        return [
            term for term in hits
            if any(not any(a <= s and e <= b for a, b in excluded) for s, e in self._spans(term, lowered))
        ]

    def present(self, lowered: Sequence[str | None]) -> list[list[str] | None]:
        """The prefilter: per lower-cased text, the terms occurring in it as substrings (each once), or None.

        One Aho-Corasick pass in polars (``extract_many``, overlapping, so "sex" inside "unisex" is reported
        too). A term absent here cannot be a hit in either mode.
        """
        if not self.terms or not lowered:
            return [None] * len(lowered)
        found = pl.Series(values=lowered, dtype=pl.String).str.extract_many(self.terms, overlapping=True)
        return found.list.unique(maintain_order=True).to_list()

    def match_column(self, texts: Sequence[str | None]) -> list[list[str]]:
        """``matches`` for each text; None or empty gives []."""
        return self.match_lowered(lower_all(texts))

    def match_lowered(
        self, lowered: Sequence[str | None], present: Sequence[list[str] | None] | None = None
    ) -> list[list[str]]:
        """``matches`` for texts already lower-cased with ``lower_all``.

        ``present``: ``self.present(lowered)``, or that of a matcher with the same terms in the other mode (the
        substring and word matchers of one list share one prefilter pass); computed when omitted.
        """
        if present is None:
            present = self.present(lowered)
        exact = self._exact
        hits = [exact(text, found) if found else [] for text, found in zip(lowered, present)]
        if self.exclusions:
            rows = [i for i, row in enumerate(hits) if row]
            for i, flagged in zip(rows, contains_any([lowered[i] for i in rows], self.exclusions)):
                if flagged:
                    hits[i] = self._outside_exclusions(lowered[i], hits[i])
        return hits

    def any_column(self, texts: Sequence[str | None]) -> list[bool]:
        """Whether any term occurs (and counts), per text."""
        return [bool(hits) for hits in self.match_column(texts)]


def naive_matches(text: str | None, terms: Sequence[str], mode: str) -> list[str]:
    """Reference implementation: each term on its own (used by tests and the benchmark baseline)."""
    if not text:
        return []
    lowered = text.lower()
    out = []
    for term in _dedupe(terms):
        if mode == "substring":
            if term in lowered:
                out.append(term)
        elif re.search(term_pattern(term, "word"), lowered):
            out.append(term)
    return out
