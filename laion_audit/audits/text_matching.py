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
own, which the tests check, at the cost of one regex scan per text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

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


class TermMatcher:
    """Which of ``terms`` occur in a text; ``matches`` returns them in list order, each once."""

    def __init__(self, terms: Iterable[str], mode: str = "word"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.terms: list[str] = _dedupe(terms)
        self._order = {term: i for i, term in enumerate(self.terms)}
        self._single = {term: re.compile(term_pattern(term, mode)) for term in self.terms}
        # For each term, the shorter terms that are its prefixes: the alternation reports only the longest
        # term matching at a position, so these need their own check there.
        self._prefixes = {
            term: [other for other in self.terms if len(other) < len(term) and term.startswith(other)]
            for term in self.terms
        }
        if self.terms:
            longest_first = sorted(self.terms, key=lambda t: (-len(t), t))
            alternation = "|".join(re.escape(t) for t in longest_first)
            if mode == "word":
                alternation = r"(?<!\w)(?:" + alternation + r")(?!\w)"
            # Alternatives are tried in order, so ``(?:...)`` finds the longest term that fits at a position.
            # In word mode a longer term failing its right boundary falls through to a shorter one.
            self._combined: re.Pattern | None = re.compile("(?=(" + alternation + "))")
        else:
            self._combined = None

    def __repr__(self) -> str:
        return f"TermMatcher({len(self.terms)} terms, mode={self.mode!r})"

    def matches(self, text: str | None) -> list[str]:
        if not text or self._combined is None:
            return []
        lowered = text.lower()
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
        if len(found) > 1:
            return sorted(found, key=self._order.__getitem__)
        return list(found)

    def match_column(self, texts: Sequence[str | None]) -> list[list[str]]:
        """``matches`` for each text; None or empty gives []."""
        combined = self._combined
        if combined is None:
            return [[] for _ in texts]
        matches = self.matches
        search = combined.search
        out: list[list[str]] = []
        append = out.append
        for text in texts:
            # Most captions hit nothing: one search on the lowered text settles those.
            if not text or search(text.lower()) is None:
                append([])
            else:
                append(matches(text))
        return out

    def any_column(self, texts: Sequence[str | None]) -> list[bool]:
        """Whether any term occurs, per text (one search each)."""
        if self._combined is None:
            return [False] * len(texts)
        search = self._combined.search
        return [bool(text) and search(text.lower()) is not None for text in texts]


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
