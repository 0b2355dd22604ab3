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

VADER is pure Python and is the floor of the cost. Each distinct caption is scored once (alt-texts repeat
within a shard), and the term matching runs behind a multi-pattern prefilter (``text_matching``), so on one
process the whole is close to VADER alone. With ``processes > 1`` the distinct captions and the URLs are
split into order-preserving chunks and each worker does both VADER and the matching for its chunk; the parent
only splits, maps results back to rows and builds the table. Starting a pool costs about as much as scoring a
few thousand captions, so ``AltTextScorer`` is a context manager that keeps one pool (one analyzer and one set
of matchers per worker, built once in the initializer) for every shard of a run.
"""

from __future__ import annotations

import multiprocessing
from typing import Any
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import pyarrow as pa

from .text_matching import TermMatcher, lower_all

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
# Chunks per worker: enough that one slow chunk does not leave the other worker idle at the end.
_CHUNKS_PER_PROCESS = 4


def _new_analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


class _Scorer:
    """What one process needs to score a chunk: the analyzer and the matchers, built once per process."""

    def __init__(self, crime_terms: Sequence[str], nsfw_terms: Sequence[str], crime_exclusions: Sequence[str]):
        self.analyzer = _new_analyzer()
        self.crime = TermMatcher(crime_terms, "word", exclusions=crime_exclusions)
        self.nsfw_substring = TermMatcher(nsfw_terms, "substring")
        self.nsfw_word = TermMatcher(nsfw_terms, "word")

    def vader(self, texts: Sequence[str]) -> list[tuple | str]:
        """(neg, neu, pos, compound) per text, or the error message (str): one bad caption must not sink the shard."""
        out: list[tuple | str] = []
        polarity_scores = self.analyzer.polarity_scores
        for text in texts:
            try:
                scores = polarity_scores(text)
                out.append((float(scores["neg"]), float(scores["neu"]), float(scores["pos"]),
                            float(scores["compound"])))
            except Exception as exc:  # noqa: BLE001
                out.append(f"{type(exc).__name__}: {exc}")
        return out

    def nsfw(self, lowered: Sequence[str | None]) -> tuple[list[list[str]], list[list[str]]]:
        # A word-mode hit is a substring hit, so the substring prefilter serves both modes.
        candidates = self.nsfw_substring.candidates(lowered)
        return (self.nsfw_substring.match_lowered(lowered, candidates),
                self.nsfw_word.match_lowered(lowered, candidates))

    def chunk(self, captions: Sequence[str], urls: Sequence[str | None]) -> tuple:
        """Scores and hits of distinct captions (all non-blank) and NSFW hits of URLs."""
        lowered = lower_all(captions)
        text_sub, text_word = self.nsfw(lowered)
        url_sub, url_word = self.nsfw(lower_all(urls))
        return self.vader(captions), self.crime.match_lowered(lowered), text_sub, text_word, url_sub, url_word


_worker: _Scorer | None = None


def _init_worker(crime_terms, nsfw_terms, crime_exclusions) -> None:
    global _worker
    _worker = _Scorer(crime_terms, nsfw_terms, crime_exclusions)


def _worker_chunk(captions: Sequence[str], urls: Sequence[str | None]) -> tuple:
    assert _worker is not None, "pool worker started without _init_worker"
    return _worker.chunk(captions, urls)


def _has_caption(caption: str | None) -> bool:
    return caption is not None and caption.strip() != ""


def _column(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows


def _split(items: list, n: int) -> list[list]:
    size = max(1, -(-len(items) // n))
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


class AltTextScorer:
    """Scores samples tables; with ``processes > 1`` one process pool serves every ``score`` call until closed.

    Use as a context manager around all the shards of a run, so the pool (and its per-worker VADER lexicon and
    compiled matchers) is built once and shut down at the end.
    """

    def __init__(
        self,
        *,
        crime_terms: Sequence[str],
        nsfw_terms: Sequence[str],
        crime_exclusions: Sequence[str] = (),
        negative_threshold: float = -0.05,
        positive_threshold: float = 0.05,
        processes: int = 1,
    ):
        self.negative_threshold = negative_threshold
        self.positive_threshold = positive_threshold
        self.processes = max(1, int(processes))
        lists = (list(crime_terms), list(nsfw_terms), list(crime_exclusions))
        self._local: _Scorer | None = None
        self._pool: ProcessPoolExecutor | None = None
        if self.processes == 1:
            self._local = _Scorer(*lists)
        else:
            # "spawn", not fork: polars keeps a thread pool, and a child forked from a process whose pool holds
            # a lock can hang forever on its first polars call.
            self._pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=lists)

    def __enter__(self) -> AltTextScorer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _run(self, captions: list[str], urls: list[str | None]) -> list:
        if self._local is not None:
            return list(self._local.chunk(captions, urls))
        if self._pool is None:
            raise RuntimeError("AltTextScorer is closed")
        n = self.processes * _CHUNKS_PER_PROCESS
        caption_chunks, url_chunks = _split(captions, n), _split(urls, n)
        width = max(len(caption_chunks), len(url_chunks))
        caption_chunks += [[]] * (width - len(caption_chunks))
        url_chunks += [[]] * (width - len(url_chunks))
        columns: list[list] = [[] for _ in range(6)]
        for part in self._pool.map(_worker_chunk, caption_chunks, url_chunks):
            for column, values in zip(columns, part):
                column.extend(values)
        return columns

    def score(self, samples: pa.Table) -> pa.Table:
        """One row per ``samples`` row (same order) with the columns of ``ALT_TEXT_SCORES_SCHEMA``."""
        captions = _column(samples, "caption")
        urls = _column(samples, "url")
        has_caption = [_has_caption(c) for c in captions]
        distinct = list(dict.fromkeys(c for c, h in zip(captions, has_caption) if h))
        vader, crime, text_sub, text_word, url_sub, url_word = self._run(distinct, urls)
        position = {caption: i for i, caption in enumerate(distinct)}
        rows = [position[c] if h else None for c, h in zip(captions, has_caption)]

        neg, neu, pos, compound, negative, positive, status, error = ([] for _ in range(8))
        nothing: list[str] = []
        crime_col, sub_col, word_col = [], [], []
        low, high = self.negative_threshold, self.positive_threshold
        for i in rows:
            if i is None:
                result: tuple | str | None = None
                crime_col.append(nothing), sub_col.append(nothing), word_col.append(nothing)
            else:
                result = vader[i]
                crime_col.append(crime[i]), sub_col.append(text_sub[i]), word_col.append(text_word[i])
            if isinstance(result, tuple):
                neg.append(result[0]), neu.append(result[1]), pos.append(result[2]), compound.append(result[3])
                negative.append(result[3] <= low), positive.append(result[3] >= high)
                status.append(STATUS_OK), error.append(None)
            else:
                for column in (neg, neu, pos, compound, negative, positive):
                    column.append(None)
                status.append(STATUS_NO_CAPTION if result is None else STATUS_ERROR)
                error.append(result)

        data = {
            "shard": _column(samples, "shard"),
            "key": _column(samples, "key"),
            "has_caption": has_caption,
            "vader_neg": neg,
            "vader_neu": neu,
            "vader_pos": pos,
            "vader_compound": compound,
            "negative": negative,
            "positive": positive,
            "crime_terms": crime_col,
            "crime_match": [bool(c) for c in crime_col],
            "nsfw_text_substring": sub_col,
            "nsfw_text_word": word_col,
            "nsfw_url_substring": url_sub,
            "nsfw_url_word": url_word,
            "status": status,
            "error": error,
        }
        return pa.Table.from_pydict(data, schema=ALT_TEXT_SCORES_SCHEMA)


def score_alt_texts(
    samples: pa.Table,
    *,
    crime_terms: Sequence[str],
    nsfw_terms: Sequence[str],
    crime_exclusions: Sequence[str] = (),
    negative_threshold: float = -0.05,
    positive_threshold: float = 0.05,
    processes: int = 1,
) -> pa.Table:
    """One row per ``samples`` row (same order) with the columns of ``ALT_TEXT_SCORES_SCHEMA``.

    A one-shot ``AltTextScorer``: for several shards, keep one scorer (and its pool) open around all of them.
    """
    with AltTextScorer(crime_terms=crime_terms, nsfw_terms=nsfw_terms, crime_exclusions=crime_exclusions,
                       negative_threshold=negative_threshold, positive_threshold=positive_threshold,
                       processes=processes) as own:
        return own.score(samples)


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
