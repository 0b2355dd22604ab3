"""Alt-texts and URLs from seeded templates, recording what was planted in each.

The vocabulary comes from the project's own word lists (identity terms, crime words, sentiment words, social
categories), Birhane et al.'s NSFW keywords and keyword-audit search strings. Confounders that only a
substring match mistakes for a hit ("photo", "shot", "hotel" for "hot"; "design" for "desi"; "adulthood" for
"adult"; "nunnery" for "nun"; "essex" for "sex"; "grapes" for "rape") appear in the text and in the URL, so an
audit's substring and word-boundary modes give predictably different counts.

Crime and negative words are planted more often next to some groups (``GROUP_MULTIPLIERS``), mimicking the
direction of the disparities Girrbach et al. report, so that the pipeline's co-occurrence statistics have a
known, non-null answer. Every filler word is neutral for VADER, so a caption's VADER sign follows the planted
sentiment word (tests check this).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from laion_audit.audits.word_lists import load_identity_terms, load_json_lexicon, load_word_list

# Probabilities per caption. The manifest records them next to the realised counts, which tests read.
RATES = {
    "identity_if_person": 0.7,
    "race_given_identity": 0.65,
    "gender_given_identity": 0.65,
    "social": 0.5,
    "crime": 0.12,
    "positive": 0.25,
    "negative": 0.2,
    "search_string": 0.12,
    "nsfw_text": 0.06,
    "nsfw_url": 0.05,
    "confounder_opener": 0.25,
    "confounder_text": 0.2,
    "confounder_url": 0.2,
    "shouted_tag": 0.3,
}
GROUP_MULTIPLIERS = {
    "crime": {"race:middle_eastern": 3.0, "race:black": 1.5},
    "negative": {"race:middle_eastern": 2.0},
}

OPENERS_PLAIN = ("picture of", "portrait of", "image of", "stock image of", "close-up of")
OPENERS_CONFOUNDING = ("photo of", "snapshot of", "headshot of")
PLACES = ("on the beach", "in an office", "at a wedding", "in a kitchen", "on a city street", "in a park",
          "at the airport", "in a garden")
THINGS = ("cat on a sofa", "cup of coffee", "rocket on the launch pad", "abstract background", "colour gradient",
          "textured wallpaper", "mountain landscape")
CONFOUNDER_PHRASES = ("photo by a designer", "hotel photoshoot", "stock shot", "adulthood milestones",
                      "interior design", "nunnery garden", "essex coast", "grapes on the table", "xxxl size",
                      "latinas parade", "designer chair")
CRIME_CLAUSES = ("in a story about {}", "news: {}", "| {}")
SEARCH_TAGS = ("#{}", "| {}", "{} style")
URL_HOSTS = ("cdn.example.com", "images.example.org", "static.example.net", "media.example.com")
URL_FOLDERS_PLAIN = ("img", "uploads", "media")
URL_FOLDERS_CONFOUNDING = ("photos", "screenshots")
URL_SLUGS_PLAIN = ("portrait", "gallery", "news", "stock-image", "people")
URL_SLUGS_CONFOUNDING = ("hotel-lobby", "design-studio", "adulthood-milestones", "essex-wedding", "grapes")


@dataclass(frozen=True)
class PlantedCaption:
    text: str
    url: str
    identity_groups: tuple[str, ...]  # planted "axis:group" labels
    planted_crime: bool
    sentiment: str  # "positive" | "negative" | "neutral"


@dataclass(frozen=True)
class Vocabulary:
    identity: dict[str, dict[str, list[str]]]
    crime: list[str]
    positive: list[str]
    negative: list[str]
    social: list[str]
    nsfw: list[str]
    search: list[str]

    @property
    def identity_groups(self) -> dict[str, list[str]]:
        """``{"gender:male": [terms], ..., "race:white": [terms], ...}``."""
        return {f"{axis}:{group}": terms for axis, groups in self.identity.items() for group, terms in groups.items()}


@cache
def vocabulary() -> Vocabulary:
    sentiment = load_json_lexicon("sentiment_words")
    return Vocabulary(
        identity=load_identity_terms(),
        crime=load_word_list("crime_words"),
        positive=[w.lower() for w in sentiment["positive"]],
        negative=[w.lower() for w in sentiment["negative"]],
        social=load_word_list("social_categories"),
        nsfw=load_word_list("nsfw_keywords_birhane2021"),
        search=load_word_list("keyword_audit_search_strings"),
    )


def _pick(rng: np.random.Generator, items) -> str:
    return items[int(rng.integers(len(items)))]


def _article(phrase: str) -> str:
    return "an" if phrase[0] in "aeiou" and not phrase.startswith(("eu", "uni")) else "a"


def _shout(rng: np.random.Generator, term: str) -> str:
    """Some tags arrive in capitals, as on the web; audits must match case-insensitively."""
    return term.upper() if rng.random() < RATES["shouted_tag"] else term


def _planted_probability(kind: str, groups: list[str]) -> float:
    multiplier = max((GROUP_MULTIPLIERS[kind].get(g, 1.0) for g in groups), default=1.0)
    return min(0.9, RATES[kind] * multiplier)


def make_caption(rng: np.random.Generator, key: str, mentions_person: bool) -> PlantedCaption:
    """One alt-text and its URL. ``key`` makes the URL unique; ``mentions_person`` chooses a person subject."""
    vocab = vocabulary()
    groups: list[str] = []
    race_term = gender_term = social_term = None
    if mentions_person and rng.random() < RATES["identity_if_person"]:
        if rng.random() < RATES["race_given_identity"]:
            group = _pick(rng, sorted(vocab.identity["race"]))
            groups.append(f"race:{group}")
            race_term = _pick(rng, vocab.identity["race"][group])
        if not race_term or rng.random() < RATES["gender_given_identity"]:
            group = _pick(rng, sorted(vocab.identity["gender"]))
            groups.append(f"gender:{group}")
            gender_term = _pick(rng, vocab.identity["gender"][group])
    if mentions_person and rng.random() < RATES["social"]:
        social_term = _pick(rng, vocab.social)

    roll = rng.random()
    p_positive, p_negative = RATES["positive"], _planted_probability("negative", groups)
    sentiment = "positive" if roll < p_positive else "negative" if roll < p_positive + p_negative else "neutral"
    sentiment_term = _pick(rng, vocab.positive if sentiment == "positive" else vocab.negative)

    if mentions_person:
        head = gender_term or social_term or "person"
        adjectives = [w for w in (sentiment_term if sentiment != "neutral" else None, race_term) if w]
        subject = " ".join([*adjectives, head])
        if gender_term and social_term:
            subject += f" working as {_article(social_term)} {social_term}"
    else:
        thing = _pick(rng, THINGS)
        subject = f"{sentiment_term} {thing}" if sentiment != "neutral" else thing

    opener_is_confounder = rng.random() < RATES["confounder_opener"]
    opener = _pick(rng, OPENERS_CONFOUNDING if opener_is_confounder else OPENERS_PLAIN)
    words = [opener, _article(subject), subject, _pick(rng, PLACES)]

    planted_crime = rng.random() < _planted_probability("crime", groups)
    if planted_crime:
        words.append(_pick(rng, CRIME_CLAUSES).format(_pick(rng, vocab.crime)))
    if rng.random() < RATES["search_string"]:
        words.append(_pick(rng, SEARCH_TAGS).format(_shout(rng, _pick(rng, vocab.search))))
    if rng.random() < RATES["confounder_text"]:
        words.append(f"- {_pick(rng, CONFOUNDER_PHRASES)}")
    if rng.random() < RATES["nsfw_text"]:
        words.append(f"| {_shout(rng, _pick(rng, vocab.nsfw))}")
    text = " ".join(words)
    text = text[0].upper() + text[1:]

    host = _pick(rng, URL_HOSTS)
    folder = _pick(rng, URL_FOLDERS_CONFOUNDING if rng.random() < RATES["confounder_url"] else URL_FOLDERS_PLAIN)
    slug = _pick(rng, URL_SLUGS_CONFOUNDING if rng.random() < RATES["confounder_url"] else URL_SLUGS_PLAIN)
    if rng.random() < RATES["nsfw_url"]:
        slug = f"{_pick(rng, vocab.nsfw)}-{slug}"
    url = f"https://{host}/{folder}/{slug}-{key}.jpg"
    return PlantedCaption(text, url, tuple(groups), planted_crime, sentiment)
