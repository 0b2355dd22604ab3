"""Per-caption alt-text scores: VADER sentiment, crime-word hits, NSFW-keyword hits in caption and URL.

Why this shape (paper_methods §5, §9):

* VADER on the raw alt-text gives neg/neu/pos/compound, as the original ``sentiment_analysis.py`` does. The
  paper does not state its "negative" threshold, so the VADER README convention (compound <= -0.05 negative,
  >= 0.05 positive) is the default and both are parameters.
* The crime-word rule is not stated either; whole-word matching is used so "crime" does not fire on
  "crimean". The NSFW keywords are recorded in both modes and for caption and URL separately, so Birhane et
  al.'s substring rule can be reproduced and its inflation measured from the same table.
* Rows without a caption are kept (status "no_caption", scores null): every key of ``samples`` stays
  accounted for. A caption VADER cannot score gets status "error" with the message, not a crash.

VADER is pure Python and dominates the cost, so ``processes > 1`` farms the captions out in order-preserving
chunks to a process pool (one analyzer per worker, built once in the initializer); the regex matching is fast
and stays in the parent.
"""

from __future__ import annotations

import re
from typing import Any
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import pyarrow as pa

from .text_matching import TermMatcher, term_pattern

STATUS_OK = "ok"
STATUS_NO_CAPTION = "no_caption"
STATUS_ERROR = "error"

ALT_TEXT_SCORES_SCHEMA = pa.schema(
    [
        pa.field("shard", pa.string()),
        pa.field("key", pa.string()),
        pa.field("has_caption", pa.bool_(), nullable=False),
        pa.field("vader_neg", pa.float64()),
        pa.field("vader_neu", pa.float64()),
        pa.field("vader_pos", pa.float64()),
        pa.field("vader_compound", pa.float64()),
        pa.field("negative", pa.bool_()),
        pa.field("positive", pa.bool_()),
        pa.field("crime_terms", pa.list_(pa.string())),
        pa.field("crime_match", pa.bool_(), nullable=False),
        pa.field("nsfw_text_substring", pa.list_(pa.string())),
        pa.field("nsfw_text_word", pa.list_(pa.string())),
        pa.field("nsfw_url_substring", pa.list_(pa.string())),
        pa.field("nsfw_url_word", pa.list_(pa.string())),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
    ]
)

_VADER_KEYS = ("neg", "neu", "pos", "compound")
_worker_analyzer = None


def _new_analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _init_worker() -> None:
    global _worker_analyzer
    _worker_analyzer = _new_analyzer()


def _vader_chunk(texts: Sequence[str | None], analyzer=None) -> list[tuple | str | None]:
    """(neg, neu, pos, compound) per text; None for no caption; the error message (str) on failure."""
    analyzer = analyzer or _worker_analyzer
    if analyzer is None:
        analyzer = _new_analyzer()
    out: list[tuple | str | None] = []
    for text in texts:
        if text is None:
            out.append(None)
            continue
        try:
            scores = analyzer.polarity_scores(text)
            out.append(tuple(float(scores[k]) for k in _VADER_KEYS))
        except Exception as exc:  # noqa: BLE001 - one bad caption must not sink the shard
            out.append(f"{type(exc).__name__}: {exc}")
    return out


def _has_caption(caption: str | None) -> bool:
    return caption is not None and caption.strip() != ""


def vader_scores(captions: Sequence[str | None], processes: int = 1) -> list[tuple | str | None]:
    """VADER for each caption (None where there is no caption), order preserved."""
    texts = [c if _has_caption(c) else None for c in captions]
    if processes <= 1 or len(texts) < 2:
        return _vader_chunk(texts, _new_analyzer())
    n_chunks = min(len(texts), processes * 4)
    size = -(-len(texts) // n_chunks)
    chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
    out: list[tuple | str | None] = []
    with ProcessPoolExecutor(max_workers=processes, initializer=_init_worker) as pool:
        for part in pool.map(_vader_chunk, chunks):
            out.extend(part)
    return out


def _column(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows


def score_alt_texts(
    samples: pa.Table,
    *,
    crime_terms: Sequence[str],
    nsfw_terms: Sequence[str],
    negative_threshold: float = -0.05,
    positive_threshold: float = 0.05,
    processes: int = 1,
) -> pa.Table:
    """One row per ``samples`` row (same order) with the columns of ``ALT_TEXT_SCORES_SCHEMA``."""
    captions = _column(samples, "caption")
    urls = _column(samples, "url")
    has_caption = [_has_caption(c) for c in captions]
    scored = vader_scores(captions, processes=processes)
    texts = [c if h else None for c, h in zip(captions, has_caption)]

    crime = TermMatcher(crime_terms, "word").match_column(texts)
    nsfw_sub = TermMatcher(nsfw_terms, "substring")
    nsfw_word = TermMatcher(nsfw_terms, "word")

    cols: dict[str, list] = {k: [] for k in ("neg", "neu", "pos", "compound", "negative", "positive", "status", "error")}
    for result in scored:
        if isinstance(result, tuple):
            for k, v in zip(_VADER_KEYS, result):
                cols[k].append(v)
            cols["negative"].append(result[3] <= negative_threshold)
            cols["positive"].append(result[3] >= positive_threshold)
            cols["status"].append(STATUS_OK)
            cols["error"].append(None)
        else:
            for k in _VADER_KEYS + ("negative", "positive"):
                cols[k].append(None)
            cols["status"].append(STATUS_NO_CAPTION if result is None else STATUS_ERROR)
            cols["error"].append(result)

    data = {
        "shard": _column(samples, "shard"),
        "key": _column(samples, "key"),
        "has_caption": has_caption,
        "vader_neg": cols["neg"],
        "vader_neu": cols["neu"],
        "vader_pos": cols["pos"],
        "vader_compound": cols["compound"],
        "negative": cols["negative"],
        "positive": cols["positive"],
        "crime_terms": crime,
        "crime_match": [bool(c) for c in crime],
        "nsfw_text_substring": nsfw_sub.match_column(texts),
        "nsfw_text_word": nsfw_word.match_column(texts),
        "nsfw_url_substring": nsfw_sub.match_column(urls),
        "nsfw_url_word": nsfw_word.match_column(urls),
        "status": cols["status"],
        "error": cols["error"],
    }
    return pa.Table.from_pydict(data, schema=ALT_TEXT_SCORES_SCHEMA)


def naive_score_loop(
    captions: Sequence[str | None],
    urls: Sequence[str | None],
    crime_terms: Sequence[str],
    nsfw_terms: Sequence[str],
) -> list[dict]:
    """Benchmark baseline only: the obvious per-caption loop, one ``re.search`` / ``in`` per term."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    crime_terms = [t.lower() for t in crime_terms]
    nsfw_terms = [t.lower() for t in nsfw_terms]
    rows = []
    for caption, url in zip(captions, urls):
        text = caption.lower() if caption else ""
        link = url.lower() if url else ""
        scores = analyzer.polarity_scores(caption) if caption and caption.strip() else None
        rows.append(
            {
                "vader": scores,
                "crime_terms": [t for t in crime_terms if re.search(term_pattern(t, "word"), text)],
                "nsfw_text_substring": [t for t in nsfw_terms if t in text],
                "nsfw_text_word": [t for t in nsfw_terms if re.search(term_pattern(t, "word"), text)],
                "nsfw_url_substring": [t for t in nsfw_terms if t in link],
                "nsfw_url_word": [t for t in nsfw_terms if re.search(term_pattern(t, "word"), link)],
            }
        )
    return rows


def add_hate_probabilities(scores: pa.Table, samples: pa.Table, classifier: Any) -> pa.Table:
    """Append ``hate_prob`` (P(hateful), null without a caption) and the classifier's name and fingerprint."""
    captions = samples.column("caption").to_pylist()
    present = [i for i, c in enumerate(captions) if c and c.strip()]
    probabilities: list[float | None] = [None] * len(captions)
    for i, p in zip(present, classifier.hateful_probability([captions[i] for i in present]), strict=True):
        probabilities[i] = p
    n = scores.num_rows
    return (scores.append_column("hate_prob", pa.array(probabilities, pa.float64()))
            .append_column("hate_model", pa.array([classifier.name] * n, pa.string()))
            .append_column("hate_model_fingerprint", pa.array([classifier.fingerprint] * n, pa.string())))
