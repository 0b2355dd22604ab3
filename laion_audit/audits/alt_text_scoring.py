"""Per-caption alt-text scores: VADER sentiment, crime-word hits, NSFW-keyword hits in caption and URL.

Why this shape (paper_methods §5, §9):

* VADER on the raw alt-text gives neg/neu/pos/compound, as the original ``sentiment_analysis.py`` does. The
  paper does not state its "negative" threshold, so the VADER README convention (compound <= -0.05 negative,
  >= 0.05 positive) is the default and both are parameters.
* The crime-word rule is not stated either; whole-word matching is used so "crime" does not fire on
  "crimean"; a crime word inside an exclusion phrase (a title such as "Grand Theft Auto", a product such
  as a "2-gang" wall plate) does not count (``crime_exclusions``). The NSFW keywords are recorded in both modes and for caption and URL separately, so Birhane et
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

import contextlib
import gc
import multiprocessing
from typing import Any
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc

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
                out.append((scores["neg"], scores["neu"], scores["pos"], scores["compound"]))
            except Exception as exc:  # noqa: BLE001
                out.append(f"{type(exc).__name__}: {exc}")
        return out

    def nsfw(self, lowered: Sequence[str | None]) -> tuple[list[list[str]], list[list[str]]]:
        # One prefilter pass serves both modes: the same terms, and a word-mode hit is a substring hit.
        present = self.nsfw_substring.present(lowered)
        return self.nsfw_substring.match_lowered(lowered, present), self.nsfw_word.match_lowered(lowered, present)

    def chunk(self, captions: Sequence[str], urls: Sequence[str | None]) -> tuple[dict, dict]:
        """Per-caption columns for distinct non-blank captions and per-row NSFW columns for URLs, as Arrow arrays.

        Arrays, not Python lists: they cross the process boundary as a few buffers, so the parent's share of
        the work stays small enough for two workers to run near twice as fast as one.
        """
        with _collector_paused():
            lowered = lower_all(captions)
            text_sub, text_word = self.nsfw(lowered)
            url_sub, url_word = self.nsfw(lower_all(urls))
            crime = self.crime.match_lowered(lowered)
        vader = self.vader(captions)
        with _collector_paused():
            scored = [v if isinstance(v, tuple) else _NO_SCORES for v in vader]
            per_caption = {
                "vader_neg": pa.array([v[0] for v in scored], pa.float64()),
                "vader_neu": pa.array([v[1] for v in scored], pa.float64()),
                "vader_pos": pa.array([v[2] for v in scored], pa.float64()),
                "vader_compound": pa.array([v[3] for v in scored], pa.float64()),
                "crime_terms": _list_array(crime),
                "nsfw_text_substring": _list_array(text_sub),
                "nsfw_text_word": _list_array(text_word),
                "status": pa.array([STATUS_OK if isinstance(v, tuple) else STATUS_ERROR for v in vader], pa.string()),
                "error": pa.array([v if isinstance(v, str) else None for v in vader], pa.string()),
            }
            per_url = {"nsfw_url_substring": _list_array(url_sub), "nsfw_url_word": _list_array(url_word)}
        return per_caption, per_url


@contextlib.contextmanager
def _collector_paused():
    """Pause the cyclic garbage collector around allocation-heavy code that creates no reference cycles.

    Matching and table assembly allocate tens of thousands of small lists; the collections they trigger walk
    the whole heap (VADER's lexicon included) and, measured, cost as much as the matching itself. Nothing
    allocated here can form a cycle, so reference counting frees it all the same.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


_worker: _Scorer | None = None


def _init_worker(crime_terms, nsfw_terms, crime_exclusions) -> None:
    global _worker
    _worker = _Scorer(crime_terms, nsfw_terms, crime_exclusions)


def _worker_chunk(captions: Sequence[str], urls: Sequence[str | None]) -> tuple:
    assert _worker is not None, "pool worker started without _init_worker"
    return _worker.chunk(captions, urls)


def _has_caption(caption: str | None) -> bool:
    return caption is not None and caption.strip() != ""


def _split(items: list, n: int) -> list[list]:
    size = max(1, -(-len(items) // n))
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


class AltTextScorer:
    """Scores samples tables; with ``processes > 1`` one process pool serves every ``score`` call until closed.

    Use as a context manager around all the shards of a run, so the pool (and its per-worker VADER lexicon and
    compiled matchers) is built once and shut down at the end. Workers are spawned (see ``__init__``), so a
    script that uses ``processes > 1`` needs the usual ``if __name__ == "__main__":`` guard.
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

    def _run(self, captions: list[str], urls: list[str | None]) -> tuple[dict, dict]:
        if self._local is not None:
            return self._local.chunk(captions, urls)
        if self._pool is None:
            raise RuntimeError("AltTextScorer is closed")
        n = self.processes * _CHUNKS_PER_PROCESS
        caption_chunks, url_chunks = _split(captions, n), _split(urls, n)
        width = max(len(caption_chunks), len(url_chunks))
        caption_chunks += [[]] * (width - len(caption_chunks))
        url_chunks += [[]] * (width - len(url_chunks))
        parts = list(self._pool.map(_worker_chunk, caption_chunks, url_chunks))
        return tuple({name: pa.concat_arrays([part[side][name] for part in parts]) for name in parts[0][side]}
                     for side in (0, 1))

    def score(self, samples: pa.Table) -> pa.Table:
        """One row per ``samples`` row (same order) with the columns of ``ALT_TEXT_SCORES_SCHEMA``.

        Each distinct caption is scored once and the per-caption results are spread back to the rows with an
        Arrow ``take``, so the parent's own work per row is a few C++ passes, not a Python loop.
        """
        captions = _string_column(samples, "caption").dictionary_encode()
        dictionary = captions.dictionary.to_pylist()
        # Blank captions count as absent (status no_caption), like null ones; the test is Python's str.strip.
        position, distinct = [], []
        for caption in dictionary:
            if _has_caption(caption):
                position.append(len(distinct))
                distinct.append(caption)
            else:
                position.append(None)
        absent = len(distinct)  # the per-caption columns get one extra entry at this index: "no caption"
        position.append(absent)  # where a null caption's index lands after fill_null below
        rows = pc.take(pa.array(position, pa.int32()).fill_null(absent),
                       pc.fill_null(captions.indices, len(dictionary)))
        per_caption, per_url = self._run(distinct, _string_column(samples, "url").to_pylist())

        no_caption = {"status": pa.array([STATUS_NO_CAPTION]), "crime_terms": _list_array([[]]),
                      "nsfw_text_substring": _list_array([[]]), "nsfw_text_word": _list_array([[]])}
        columns = {
            name: pc.take(pa.concat_arrays([values, no_caption.get(name, pa.nulls(1, values.type))]), rows)
            for name, values in per_caption.items()
        }
        compound = columns["vader_compound"]
        columns.update(
            per_url,
            shard=_string_column(samples, "shard"),
            key=_string_column(samples, "key"),
            has_caption=pc.not_equal(rows, pa.scalar(absent, pa.int32())),
            negative=pc.less_equal(compound, pa.scalar(self.negative_threshold)),
            positive=pc.greater_equal(compound, pa.scalar(self.positive_threshold)),
            crime_match=pc.greater(pc.list_value_length(columns["crime_terms"]), 0),
        )
        return pa.table([columns[f.name] for f in ALT_TEXT_SCORES_SCHEMA], schema=ALT_TEXT_SCORES_SCHEMA)


_NO_SCORES = (None, None, None, None)


def _string_column(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    return table.column(name).combine_chunks().cast(pa.string())


def _list_array(rows: list[list[str]]) -> pa.Array:
    """list<string> from Python lists, mostly empty: offsets and flat values, not one conversion per row."""
    offsets, flat, total = [0], [], 0
    for row in rows:
        if row:
            flat.extend(row)
            total += len(row)
        offsets.append(total)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, pa.string()))


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
