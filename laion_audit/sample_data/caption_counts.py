"""What each caption and URL contains, by the two matching rules the audits use, and the counts over a shard.

Counts are recounted from the final texts (never taken from what the templates meant to plant), because
that is what a correct audit will find. Text and URL are lower-cased first. ``substring`` is Birhane et al.'s
simple string match; ``word`` requires that neither neighbour of the term is a word character.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import cache
from typing import Any

from laion_audit.audits.word_lists import term_pattern
from laion_audit.sample_data.captions import vocabulary

MATCHING = {
    "case": "text and URL lower-cased before matching",
    "substring": "term occurs anywhere (Birhane et al. 2021: simple string match)",
    "word": r"(?<!\w)term(?!\w): neither neighbour is a letter, digit or underscore",
}


@cache
def _patterns():
    vocab = vocabulary()
    return {
        "crime": term_pattern(vocab.crime),
        "positive": term_pattern(vocab.positive),
        "negative": term_pattern(vocab.negative),
        "identity": {group: term_pattern(terms) for group, terms in vocab.identity_groups.items()},
        "social": {term: term_pattern([term]) for term in vocab.social},
        "nsfw_word": {kw: term_pattern([kw]) for kw in vocab.nsfw},
        "search_word": {s: term_pattern([s]) for s in vocab.search},
    }


def _hits(terms: Iterable[str], text: str, mode: str, word_patterns: dict) -> list[str]:
    if mode == "substring":
        return [t for t in terms if t in text]
    return [t for t in terms if word_patterns[t].search(text)]


def caption_hits(caption: str | None, url: str | None) -> dict[str, Any]:
    """Per-sample findings: the ground-truth table stores these next to what was planted."""
    vocab, patterns = vocabulary(), _patterns()
    text, link = (caption or "").lower(), (url or "").lower()
    return {
        "crime_terms": sorted({m.group(0) for m in patterns["crime"].finditer(text)}),
        "positive_word": bool(patterns["positive"].search(text)),
        "negative_word": bool(patterns["negative"].search(text)),
        "identity_groups": [g for g, p in patterns["identity"].items() if p.search(text)],
        "social_categories": [s for s, p in patterns["social"].items() if p.search(text)],
        "nsfw_text_hits": _hits(vocab.nsfw, text, "substring", patterns["nsfw_word"]),
        "nsfw_url_hits": _hits(vocab.nsfw, link, "substring", patterns["nsfw_word"]),
        "nsfw_text_word_hits": _hits(vocab.nsfw, text, "word", patterns["nsfw_word"]),
        "nsfw_url_word_hits": _hits(vocab.nsfw, link, "word", patterns["nsfw_word"]),
        "search_hits": _hits(vocab.search, text, "substring", patterns["search_word"]),
        "search_word_hits": _hits(vocab.search, text, "word", patterns["search_word"]),
    }


def caption_statistics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Exact counts over ground-truth rows (as written to ground_truth.parquet), for the manifest.

    Every count is a number of samples (a caption with two crime words counts once). Zero counts are listed
    so a test can index any group or keyword without a default.
    """
    vocab = vocabulary()
    hits = [caption_hits(r["caption"], r["url"]) for r in rows]
    groups = list(vocab.identity_groups)
    stats: dict[str, Any] = {
        "samples": len(rows),
        "with_caption": sum(1 for r in rows if r["caption"] is not None),
        "with_person": sum(1 for r in rows if r["has_person"]),
        "people": sum(r["n_people"] or 0 for r in rows),
        "bad_samples": sum(1 for r in rows if r["bad_kind"]),
        "crime_word": sum(1 for h in hits if h["crime_terms"]),
        "positive_word": sum(h["positive_word"] for h in hits),
        "negative_word": sum(h["negative_word"] for h in hits),
        "planted_crime": sum(1 for r in rows if r["planted_crime"]),
        "planted_positive": sum(1 for r in rows if r["planted_sentiment"] == "positive"),
        "planted_negative": sum(1 for r in rows if r["planted_sentiment"] == "negative"),
        "identity_groups": {g: sum(g in h["identity_groups"] for h in hits) for g in groups},
        "identity_cooccurrence": {
            g: {
                "crime_word": sum(1 for h in hits if g in h["identity_groups"] and h["crime_terms"]),
                "negative_word": sum(1 for h in hits if g in h["identity_groups"] and h["negative_word"]),
                "positive_word": sum(1 for h in hits if g in h["identity_groups"] and h["positive_word"]),
            }
            for g in groups
        },
        "social_categories": {s: sum(s in h["social_categories"] for h in hits) for s in vocab.social},
        "nsfw_flag": dict(sorted(Counter(r["nsfw_flag"] for r in rows).items())),
    }
    for mode, suffix in (("substring", ""), ("word", "_word")):
        text_key, url_key = f"nsfw_text{suffix}_hits", f"nsfw_url{suffix}_hits"
        stats[f"nsfw_keywords_{mode}"] = {
            kw: {
                "text": sum(kw in h[text_key] for h in hits),
                "url": sum(kw in h[url_key] for h in hits),
                "text_or_url": sum(kw in h[text_key] or kw in h[url_key] for h in hits),
            }
            for kw in vocab.nsfw
        }
        stats[f"nsfw_any_{mode}"] = {
            "text": sum(bool(h[text_key]) for h in hits),
            "url": sum(bool(h[url_key]) for h in hits),
            "text_or_url": sum(bool(h[text_key] or h[url_key]) for h in hits),
        }
        search_key = "search_hits" if mode == "substring" else "search_word_hits"
        stats[f"search_strings_{mode}"] = {s: sum(s in h[search_key] for h in hits) for s in vocab.search}
    stats["keyword_audit"] = _keyword_audit(rows, hits, vocab.search)
    return stats


def _keyword_audit(rows: list[dict], hits: list[dict], search: list[str]) -> dict[str, Any]:
    """Birhane et al.'s Table 1 on these rows: substring match of the search string in TEXT, NSFW when any
    keyword occurs in TEXT or URL by substring, and the distribution of LAION's NSFW flag among the matches."""
    table = {}
    for term in search:
        matched = [(r, h) for r, h in zip(rows, hits) if term in h["search_hits"]]
        table[term] = {
            "n_match": len(matched),
            "n_nsfw": sum(1 for _, h in matched if h["nsfw_text_hits"] or h["nsfw_url_hits"]),
            "nsfw_flag_values": dict(sorted(Counter(r["nsfw_flag"] for r, _ in matched).items())),
        }
    return table
