"""Throughput of `score_alt_texts` against the plain per-caption loop, and its 1- vs 2-process speed-up.

Both sides score the same caption and URL lists in the same process run, alternating per repeat so machine
noise hits both; results are medians of the repeats, reported as captions/s and ratios. The captions come from
the project's sample generator (a metadata parquet shard, columns TEXT/URL), or from --parquet.
Usage: python benchmarks/bench_alt_text_scores.py [--rows 20000] [--repeats 3] [--parquet FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from laion_audit.audits.alt_text_scoring import naive_score_loop, score_alt_texts

NSFW_FALLBACK = ["porn", "hot", "adult", "xxx", "sex", "f*ck", "rape"]
CRIME_FALLBACK = [  # used only when the shipped crime list is not available
    "crime", "criminal", "thief", "robber", "robbery", "murder", "murderer", "prison", "jail", "inmate",
    "convict", "arrest", "arrested", "police", "gang", "gangster", "drug dealer", "terrorist", "terrorism",
    "violence", "violent", "assault", "fraud", "burglar", "kidnapper", "illegal", "mugshot", "suspect",
]


def _terms(name: str, fallback: list[str]) -> tuple[list[str], str]:
    try:
        from laion_audit.audits.word_lists import load_word_list

        terms = load_word_list(name)
        if terms:
            return terms, name
    except Exception:  # noqa: BLE001 - list not shipped yet: fall back, and say so in the output
        pass
    return fallback, f"{name} (built-in fallback)"


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


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parquet")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_alt_text_scores.json"))
    args = ap.parse_args(argv)

    captions, urls, source = load_captions(args.rows, args.parquet)
    crime, crime_src = _terms("crime_words", CRIME_FALLBACK)
    nsfw, nsfw_src = _terms("nsfw_keywords_birhane2021", NSFW_FALLBACK)
    n = len(captions)
    samples = pa.table({"shard": ["bench"] * n, "key": [str(i) for i in range(n)], "caption": captions, "url": urls})

    runs = {"naive_loop": [], "score_p1": [], "score_p2": []}
    for _ in range(args.repeats):
        runs["naive_loop"].append(_time(lambda: naive_score_loop(captions, urls, crime, nsfw)))
        runs["score_p1"].append(
            _time(lambda: score_alt_texts(samples, crime_terms=crime, nsfw_terms=nsfw, processes=1))
        )
        runs["score_p2"].append(
            _time(lambda: score_alt_texts(samples, crime_terms=crime, nsfw_terms=nsfw, processes=2))
        )
    med = {k: statistics.median(v) for k, v in runs.items()}
    rate = {k: n / v for k, v in med.items()}
    result = {
        "benchmark": "bench_alt_text_scores",
        "captions": n,
        "captions_with_text": sum(1 for c in captions if c and c.strip()),
        "source": source,
        "crime_terms": {"list": crime_src, "n": len(crime)},
        "nsfw_terms": {"list": nsfw_src, "n": len(nsfw)},
        "repeats": args.repeats,
        "seconds": runs,
        "median_seconds": med,
        "captions_per_s": rate,
        "ratio_score_p1_vs_naive": med["naive_loop"] / med["score_p1"],
        "speedup_p2_vs_p1": med["score_p1"] / med["score_p2"],
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    print(f"{n} captions ({source}); crime terms {len(crime)} [{crime_src}], nsfw terms {len(nsfw)}; "
          f"median of {args.repeats}")
    print(f"{'variant':<28}{'median s':>10}{'captions/s':>12}")
    for k, label in (("naive_loop", "naive per-caption loop"), ("score_p1", "score_alt_texts p=1"),
                     ("score_p2", "score_alt_texts p=2")):
        print(f"{label:<28}{med[k]:>10.3f}{rate[k]:>12.0f}")
    print(f"score_alt_texts p=1 / naive: {result['ratio_score_p1_vs_naive']:.2f}x; "
          f"p=2 / p=1 speed-up: {result['speedup_p2_vs_p1']:.2f}x (cpu_count={os.cpu_count()})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
