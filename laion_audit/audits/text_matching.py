"""Matching term lists against captions and URLs, in two modes whose difference is itself a finding.

* ``substring``: ``term in text.lower()``. This is Birhane et al.'s "simple string match" (paper_methods §9),
  kept so their Table 1 can be reproduced; it counts "design" as a hit for "desi" and "photo" for "hot".
* ``word``: the term must not touch a word character on either side (``(?<!\\w)term(?!\\w)``), so multi-word
  terms match as phrases and punctuation-bearing terms such as ``f*ck`` are matched literally (escaped).

Both modes lower-case the text and the terms and compare without ``re.IGNORECASE``, so a regex hit is exactly a
``term in text.lower()`` hit (substring) and a hit's text is exactly the term. One combined alternation per
matcher (longest term first) is scanned with a zero-width lookahead at every position, so overlapping hits
("unisex" / "sex") are all seen in one pass; a shorter term that starts where a longer one matched ("hot" under
"hot dog") is then checked with its own pattern at that position. The result equals testing each term on its
own, which the tests check.

Most captions hit no term, so columns are first narrowed with a multi-pattern substring prefilter (polars
``str.contains_any``, an Aho-Corasick scan in Rust) over the lower-cased texts: a word-mode hit is also a
substring hit of the same term in the same lower-cased text, so the prefilter never drops a row the exact
matcher would report, and the regexes run only on the rows it keeps.

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


def contains_any(lowered: Sequence[str | None], terms: Sequence[str]) -> list[bool]:
    """Whether each (lower-cased) text contains any of ``terms`` as a plain substring: the prefilter."""
    if not terms or not lowered:
        return [False] * len(lowered)
    hits = pl.Series(values=lowered, dtype=pl.String).str.contains_any(list(terms))
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
        # For each term, the shorter terms that are its prefixes: the alternation reports only the longest
        # term matching at a position, so these need their own check there.
        self._prefixes = {
            term: [other for other in self.terms if len(other) < len(term) and term.startswith(other)]
            for term in self.terms
        }
        self._combined = self._alternation(self.terms)
        self._excluding = self._alternation(self.exclusions) if self.terms else None
        # Every occurrence, overlapping ones included (zero-width lookahead), for the span test of exclusions.
        self._occurrences = {t: re.compile("(?=" + term_pattern(t, mode) + ")") for t in self.terms + self.exclusions}

    def _alternation(self, phrases: list[str]) -> re.Pattern | None:
        if not phrases:
            return None
        longest_first = sorted(phrases, key=lambda t: (-len(t), t))
        alternation = "|".join(re.escape(t) for t in longest_first)
        if self.mode == "word":
            alternation = r"(?<!\w)(?:" + alternation + r")(?!\w)"
        # Alternatives are tried in order, so ``(?:...)`` finds the longest term that fits at a position.
        # In word mode a longer term failing its right boundary falls through to a shorter one.
        return re.compile("(?=(" + alternation + "))")

    def __repr__(self) -> str:
        return f"TermMatcher({len(self.terms)} terms, {len(self.exclusions)} exclusions, mode={self.mode!r})"

    def matches(self, text: str | None) -> list[str]:
        if not text or self._combined is None:
            return []
        return self._matches_lowered(text.lower())

    def _matches_lowered(self, lowered: str) -> list[str]:
        found: set[str] = set()
        for m in self._combined.finditer(lowered):
            term = m.group(1)
            if term not in self._order:  # cannot happen with lower-cased terms; kept for safety
                continue
            found.add(term)
            start = m.start()
            for shorter in self._prefixes[term]:
                if shorter not in found and self._single[shorter].match(lowered, start):
                    found.add(shorter)
        if found and self._excluding is not None and self._excluding.search(lowered):
            found = self._outside_exclusions(lowered, found)
        if len(found) > 1:
            return sorted(found, key=self._order.__getitem__)
        return list(found)

    def _spans(self, phrase: str, lowered: str) -> list[tuple[int, int]]:
        # Terms are literal, so an occurrence spans exactly len(phrase) characters of the lowered text.
        return [(m.start(), m.start() + len(phrase)) for m in self._occurrences[phrase].finditer(lowered)]

    def _outside_exclusions(self, lowered: str, found: set[str]) -> set[str]:
        excluded = [span for phrase in self.exclusions for span in self._spans(phrase, lowered)]
        return {
            term for term in found
            if any(not any(a <= s and e <= b for a, b in excluded) for s, e in self._spans(term, lowered))
        }

    def match_column(self, texts: Sequence[str | None]) -> list[list[str]]:
        """``matches`` for each text; None or empty gives []."""
        return self.match_lowered(lower_all(texts))

    def match_lowered(self, lowered: Sequence[str | None], candidates: Sequence[bool] | None = None) -> list[list[str]]:
        """``matches`` for texts already lower-cased with ``lower_all``.

        ``candidates``: a prefilter result for these texts over a superset of ``self.terms`` (for example the
        substring-mode matcher's, reused by the word-mode matcher of the same terms); computed when omitted.
        """
        if self._combined is None:
            return [[] for _ in lowered]
        if candidates is None:
            candidates = self.candidates(lowered)
        exact = self._matches_lowered
        return [exact(text) if hit else [] for text, hit in zip(lowered, candidates)]

    def candidates(self, lowered: Sequence[str | None]) -> list[bool]:
        """The prefilter: rows whose lower-cased text contains some term as a substring (a superset of hits)."""
        return contains_any(lowered, self.terms)

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
