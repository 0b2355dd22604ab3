"""Alt-texts from seeded templates, with what was planted in each one recorded.

The vocabulary mixes identity terms, crime words, sentiment-laden words, social categories, Birhane et al.'s
NSFW keywords and keyword-audit search strings, plus confounders that only a substring match takes for a
hit ("design" for "desi", "photo"/"hotel"/"shot" for "hot", "adulthood" for "adult", "nunnery" for "nun"), in the
text and in the URL, so the audits' two match modes give predictably different counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np

from laion_audit.lexical import load_identity_terms, load_json_lexicon, load_word_list

CONFOUNDERS = ("design", "designer", "photo", "hotel", "shot", "adulthood", "nunnery")
PLACES = ("on the beach", "in an office", "at a wedding", "in a kitchen", "on a city street", "in a park")

# Probabilities per caption; the manifest records the realised counts, which tests read.
RATES = {
    "identity": 0.6,
    "social": 0.5,
    "crime": 0.2,
    "positive": 0.25,
    "negative": 0.25,
    "nsfw_text": 0.06,
    "nsfw_url": 0.05,
    "search": 0.12,
    "confounder_text": 0.2,
    "photos_url": 0.3,
}


@dataclass
class Caption:
    text: str
    url: str
    identity_groups: list[str] = field(default_factory=list)
    planted_crime: bool = False
    sentiment: str = "neutral"


@cache
def vocabulary() -> dict:
    return {
        "identity": load_identity_terms(),
        "crime": load_word_list("crime_words"),
        "sentiment": load_json_lexicon("sentiment_words"),
        "social": load_word_list("social_categories"),
        "nsfw": load_word_list("nsfw_keywords_birhane2021"),
        "search": load_word_list("keyword_audit_search_strings"),
    }


def _pick(rng: np.random.Generator, items) -> str:
    items = list(items)
    return items[int(rng.integers(len(items)))]


def make_caption(rng: np.random.Generator, key: str, has_person: bool) -> Caption:
    vocab = vocabulary()
    words: list[str] = []
    caption = Caption(text="", url="")
    sentiment_roll = rng.random()
    if sentiment_roll < RATES["positive"]:
        caption.sentiment = "positive"
        words.append(_pick(rng, vocab["sentiment"]["positive"]))
    elif sentiment_roll < RATES["positive"] + RATES["negative"]:
        caption.sentiment = "negative"
        words.append(_pick(rng, vocab["sentiment"]["negative"]))
    words.append("photo of a" if rng.random() < RATES["confounder_text"] else "picture of a")
    if has_person and rng.random() < RATES["identity"]:
        axis = "race" if rng.random() < 0.5 else "gender"
        group = _pick(rng, sorted(vocab["identity"][axis]))
        caption.identity_groups.append(f"{axis}:{group}")
        words.append(_pick(rng, vocab["identity"][axis][group]))
    if rng.random() < RATES["social"]:
        words.append(_pick(rng, vocab["social"]))
    elif not has_person:
        words.append(_pick(rng, ("cat", "cup of coffee", "rocket", "landscape")))
    else:
        words.append("person")
    if rng.random() < RATES["crime"]:
        caption.planted_crime = True
        words.append(f"after the {_pick(rng, vocab['crime'])}")
    words.append(_pick(rng, PLACES))
    if rng.random() < RATES["search"]:
        words.append(_pick(rng, vocab["search"]))
    if rng.random() < RATES["confounder_text"]:
        words.append(_pick(rng, CONFOUNDERS))
    if rng.random() < RATES["nsfw_text"]:
        words.append(_pick(rng, vocab["nsfw"]))
    caption.text = " ".join(words).capitalize()

    folder = "photos" if rng.random() < RATES["photos_url"] else "img"
    slug = _pick(rng, ("hotel-lobby", "stock", "portrait", "gallery", "news"))
    if rng.random() < RATES["nsfw_url"]:
        slug = f"{_pick(rng, vocab['nsfw']).replace('*', '')}-{slug}"
    caption.url = f"https://cdn.example.com/{folder}/{slug}-{key}.jpg"
    return caption
