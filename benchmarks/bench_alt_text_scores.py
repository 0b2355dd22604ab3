"""`score_alt_texts` against its floor (VADER alone), against a naive per-caption loop, and 1 vs 2 processes.

Per repeat, in this order and on the same captions and URLs:

* ``vader_alone``    — ``SentimentIntensityAnalyzer.polarity_scores`` on every non-blank caption: the floor;
* ``vader_distinct`` — the same on each distinct caption once (the floor once duplicates are skipped, which the
  product does: reported so the duplicate share's contribution to the first ratio can be seen);
* ``naive_loop``     — VADER per caption plus one precompiled regex / ``in`` test per term and caption;
* ``score_p1``       — ``AltTextScorer(processes=1).score``;
* ``score_p2``       — ``AltTextScorer(processes=2).score`` on a pool started once before the repeats (as the
  asset keeps one pool for all shards of a run; the pool's start-up is reported separately).

Ratios are taken within each repeat (so load on a shared machine hits both sides) and reported as
min/median/max over the repeats; the 1-process ratio is also given in this process's CPU seconds, which other
load on the machine disturbs less than wall time. The naive loop does not apply the exclusion phrases (a cost
baseline; the product does that extra work). The captions come from the project's sample generator (a metadata parquet
shard, columns TEXT/URL), or from --parquet.
Usage: python benchmarks/bench_alt_text_scores.py [--rows 20000] [--repeats 3] [--parquet FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from laion_audit.audits.alt_text_scoring import AltTextScorer
from laion_audit.audits.word_lists import load_word_list


def naive_score_loop(
    captions: Sequence[str | None],
    urls: Sequence[str | None],
    crime_terms: Sequence[str],
    nsfw_terms: Sequence[str],
    analyzer,
) -> list[dict]:
    """The obvious per-caption loop, as a fair baseline: patterns compiled once, one test per term and caption."""
    crime_terms = [t.lower() for t in crime_terms]
    crime = [re.compile(r"(?<!\w)" + re.escape(t) + r"(?!\w)") for t in crime_terms]
    nsfw = [t.lower() for t in nsfw_terms]
    nsfw_word = [re.compile(r"(?<!\w)" + re.escape(t) + r"(?!\w)") for t in nsfw]
    rows = []
    for caption, url in zip(captions, urls):
        text = caption.lower() if caption else ""
        link = url.lower() if url else ""
        rows.append({
            "vader": analyzer.polarity_scores(caption) if caption and caption.strip() else None,
            "crime_terms": [t for t, p in zip(crime_terms, crime) if p.search(text)],
            "nsfw_text_substring": [t for t in nsfw if t in text],
            "nsfw_text_word": [t for t, p in zip(nsfw, nsfw_word) if p.search(text)],
            "nsfw_url_substring": [t for t in nsfw if t in link],
            "nsfw_url_word": [t for t, p in zip(nsfw, nsfw_word) if p.search(link)],
        })
    return rows


def load_captions(rows: int, parquet: str | None) -> tuple[list, list, str]:
    if parquet:
        table = pq.read_table(parquet, columns=["TEXT", "URL"]).slice(0, rows)
        source = parquet
    else:
        from laion_audit.sample_data.generate import write_sample_shards

        with tempfile.TemporaryDirectory() as tmp:
            write_sample_shards(tmp, n_tar_shards=0, include_bad_shard=False, metadata_rows=rows)
            table = pa.concat_tables(
                pq.read_table(p, columns=["TEXT", "URL"]) for p in sorted(Path(tmp).glob("part-*.parquet"))
            )
        source = f"laion_audit.sample_data metadata_rows={rows}"
    return table.column("TEXT").to_pylist(), table.column("URL").to_pylist(), source


_cpu: dict[str, list[float]] = {}


def _time(fn, name: str | None = None) -> float:
    """Wall seconds of ``fn()``; with ``name``, this process's CPU seconds are recorded under it too."""
    cpu, start = time.process_time(), time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    if name:
        _cpu.setdefault(name, []).append(time.process_time() - cpu)
    return wall


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parquet")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_alt_text_scores.json"))
    args = ap.parse_args(argv)
    if args.repeats < 3:
        ap.error("--repeats must be at least 3 (min/median/max)")

    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    captions, urls, source = load_captions(args.rows, args.parquet)
    crime, nsfw, exclusions = (load_word_list("crime_words"), load_word_list("nsfw_keywords_birhane2021"),
                               load_word_list("crime_exclusions"))
    n = len(captions)
    samples = pa.table({"shard": ["bench"] * n, "key": [str(i) for i in range(n)], "caption": captions, "url": urls})
    texts = [c for c in captions if c and c.strip()]
    distinct = list(dict.fromkeys(texts))
    analyzer = SentimentIntensityAnalyzer()
    lists = {"crime_terms": crime, "nsfw_terms": nsfw, "crime_exclusions": exclusions}

    one = AltTextScorer(**lists, processes=1)
    pool_start = time.perf_counter()
    two = AltTextScorer(**lists, processes=2)
    two.score(samples.slice(0, 8))  # the workers' start-up and first import, once per run as in the asset
    pool_start = time.perf_counter() - pool_start
    if not one.score(samples).equals(two.score(samples)):
        raise SystemExit("1-process and 2-process tables differ")

    runs: dict[str, list[float]] = {k: [] for k in ("vader_alone", "vader_distinct", "naive_loop", "score_p1",
                                                    "score_p2")}
    try:
        for _ in range(args.repeats):
            runs["vader_alone"].append(_time(lambda: [analyzer.polarity_scores(t) for t in texts], "vader_alone"))
            runs["vader_distinct"].append(_time(lambda: [analyzer.polarity_scores(t) for t in distinct]))
            runs["naive_loop"].append(_time(lambda: naive_score_loop(captions, urls, crime, nsfw, analyzer)))
            runs["score_p1"].append(_time(lambda: one.score(samples), "score_p1"))
            runs["score_p2"].append(_time(lambda: two.score(samples)))
    finally:
        two.close()
    ratios = {
        "score_p1_over_vader_alone": [s / v for s, v in zip(runs["score_p1"], runs["vader_alone"])],
        "score_p1_over_vader_distinct": [s / v for s, v in zip(runs["score_p1"], runs["vader_distinct"])],
        "naive_over_score_p1": [a / s for a, s in zip(runs["naive_loop"], runs["score_p1"])],
        "speedup_p2_over_p1": [a / b for a, b in zip(runs["score_p1"], runs["score_p2"])],
        # CPU seconds of this process (polars' threads included): less sensitive than wall time to other load
        "cpu_score_p1_over_vader_alone": [s / v for s, v in zip(_cpu["score_p1"], _cpu["vader_alone"])],
    }
    result = {
        "benchmark": "bench_alt_text_scores",
        "captions": n,
        "captions_with_text": len(texts),
        "distinct_captions": len(distinct),
        "source": source,
        "terms": {"crime_words": len(crime), "nsfw_keywords": len(nsfw), "crime_exclusions": len(exclusions)},
        "repeats": args.repeats,
        "seconds": runs,
        "pool_start_seconds": pool_start,
        "ratios": {k: {"runs": v, **_spread(v)} for k, v in ratios.items()},
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    print(f"{n} captions ({source}), {len(distinct)} distinct; crime terms {len(crime)}, exclusions "
          f"{len(exclusions)}, nsfw terms {len(nsfw)}; {args.repeats} repeats; cpu_count={os.cpu_count()}")
    print(f"{'variant':<30}{'median s':>10}{'captions/s':>12}")
    for key, values in runs.items():
        median = statistics.median(values)
        print(f"{key:<30}{median:>10.3f}{n / median:>12.0f}")
    print(f"2-process pool start-up (once per run): {pool_start:.2f} s")
    print(f"{'ratio (per repeat)':<30}{'min':>8}{'median':>8}{'max':>8}")
    for key, values in ratios.items():
        spread = _spread(values)
        print(f"{key:<30}{spread['min']:>8.2f}{spread['median']:>8.2f}{spread['max']:>8.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
