"""Dataset tables at LAION scale: reducing N per-shard group-count files vs reading every shard's rows.

For each N: a store holding N `group_counts` shard files, each the sums of a synthetic 10,000-sample shard
(1–3 people per photo, 3 gender x 4 race labels, crime words, sentiment, hate speech), published through
ShardStore with real completion markers. The measured path is the product's: `crime_cooccurrence(store)` and
`sentiment_by_group(store)` (read every marker on a thread pool, lazy-scan the files the markers name, sum,
compute rates, intervals and suppression), in a fresh process so its peak RSS is its own.

The baseline, in the same run, is what the landed main did: read every shard's label and score rows into one
process and compute the tables from all rows at once (here: concat + group_sums + the same table code), at the
smaller Ns only — it grows with N and died at 1,000 shards of 10,000 rows in the issue's measurement.

Reported per N: seconds and peak RSS of each path, the ratio, and the extrapolation of the reduction to 41,408
shards (seconds per shard at the largest N x 41,408; memory is flat in N when the design holds).

Usage: python benchmarks/bench_group_reduction.py [--sizes 100 1000 3000] [--baseline-sizes 10 100] [--rows 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAION_400M_SHARDS = 41_408


def synthetic_rows(shard: str, rows: int, seed: int):
    import polars as pl

    rng = random.Random(seed)
    genders, races, words = ["male", "female", "unclear"], ["white", "black", "east_asian", "indian"], [
        "thief", "fraud", "murder", "arrest", "gang"]
    gender, race, scores = [], [], []
    for i in range(rows):
        key = f"{shard}{i:05d}"
        for box in range(rng.choice([0, 1, 1, 2, 3])):
            gender.append((shard, key, box, rng.choice(genders), "ok"))
            race.append((shard, key, box, rng.choice(races), "ok"))
        hit = [w for w in words if rng.random() < 0.03]
        scores.append((shard, key, "ok", bool(hit), hit, rng.random() < 0.2, rng.uniform(-1, 1), rng.random()))
    labels = {"shard": pl.String, "key": pl.String, "box_id": pl.Int64, "label": pl.String, "status": pl.String}
    score_schema = {"shard": pl.String, "key": pl.String, "status": pl.String, "crime_match": pl.Boolean,
                    "crime_terms": pl.List(pl.String), "negative": pl.Boolean, "vader_compound": pl.Float64,
                    "hate_prob": pl.Float64}
    return (pl.DataFrame(gender, schema=labels, orient="row"), pl.DataFrame(race, schema=labels, orient="row"),
            pl.DataFrame(scores, schema=score_schema, orient="row"))


def build_store(root: Path, n: int, rows: int, templates: int = 8, keep_rows: bool = False) -> None:
    """N shards of group counts (and, with keep_rows, their label and score rows for the baseline).

    Sums of ``templates`` distinct synthetic shards are reused round-robin: computing 3,000 shards' sums from rows
    would time the setup, not the reduction, and the reduction's cost does not depend on the values.
    """
    from laion_audit.shards.recipe import Recipe
    from laion_audit.shards.store import Provenance, ShardStore
    from laion_audit.stats.group_sums import group_sums

    store = ShardStore(str(root))
    cache = [synthetic_rows(f"{t:05d}", rows, seed=t) for t in range(min(templates, n))]
    sums = [group_sums(*frames).to_arrow() for frames in cache]
    recipe = Recipe("group_counts", "group_counts-1", settings={"input_version_sets": {"alt_text_scores": "a" * 16}})
    for i in range(n):
        shard = f"{i:05d}"
        store.write_table(Provenance(recipe, shard, "bench"), sums[i % len(sums)], restricted=True)
        if keep_rows:
            gender, race, scores = cache[i % len(cache)]
            for asset, frame, restricted in (("gender_labels", gender, True), ("race_labels", race, True),
                                             ("alt_text_scores", scores, False)):
                store.write_table(Provenance(Recipe(asset, "v"), shard, "bench"), frame.to_arrow(),
                                  restricted=restricted)


def child(mode: str, root: str) -> None:
    """Run one path in this (fresh) process and print its seconds and peak RSS as JSON."""
    import resource

    import polars as pl

    from laion_audit.audits.group_tables import crime_cooccurrence, crime_tables, sentiment_by_group, sentiment_tables
    from laion_audit.shards.store import ShardStore
    from laion_audit.stats.group_sums import group_sums

    start = time.perf_counter()  # imports excluded: they are the same for both paths and for every N
    store = ShardStore(root)
    if mode == "reduce":
        crime_cooccurrence(store)
        sentiment_by_group(store)
    else:
        frames = {}
        for asset, restricted in (("gender_labels", True), ("race_labels", True), ("alt_text_scores", False)):
            shards = sorted(store.complete_shards(asset, restricted))
            frames[asset] = pl.concat([pl.from_arrow(store.read_table(asset, s, restricted)) for s in shards])
        sums = group_sums(frames["gender_labels"], frames["race_labels"], frames["alt_text_scores"])
        crime_tables(sums)
        sentiment_tables(sums)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_child(mode: str, root: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(root)], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000])
    parser.add_argument("--baseline-sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_group_reduction_") as tmp:
        for n in sorted(set(args.sizes) | set(args.baseline_sizes)):
            root = Path(tmp) / f"n{n}"
            t = time.perf_counter()
            build_store(root, n, args.rows, keep_rows=n in args.baseline_sizes)
            setup = time.perf_counter() - t
            row = {"shards": n, "setup_seconds": round(setup, 1)}
            if n in args.sizes or n in args.baseline_sizes:
                row["reduce"] = run_child("reduce", root)
            if n in args.baseline_sizes:
                row["all_rows"] = run_child("all_rows", root)
                row["speedup"] = round(row["all_rows"]["seconds"] / row["reduce"]["seconds"], 2)
                row["memory_ratio"] = round(row["all_rows"]["peak_rss_mb"] / row["reduce"]["peak_rss_mb"], 2)
            print(json.dumps(row), flush=True)
            results.append(row)
    ordered = sorted(results, key=lambda r: r["shards"])
    smallest, largest = ordered[0], ordered[-1]
    below = ordered[-2] if len(ordered) > 1 else smallest
    # Marginal cost per shard between the two largest sizes (fixed costs cancel), times the shards still to add.
    per_shard = ((largest["reduce"]["seconds"] - below["reduce"]["seconds"]) / (largest["shards"] - below["shards"])
                 if largest is not below else largest["reduce"]["seconds"] / largest["shards"])
    print(json.dumps({
        "seconds_per_added_shard": per_shard,
        "extrapolated_41408_seconds": round(largest["reduce"]["seconds"]
                                            + per_shard * (LAION_400M_SHARDS - largest["shards"]), 1),
        "peak_rss_mb_by_shards": {r["shards"]: round(r["reduce"]["peak_rss_mb"]) for r in results},
        "rss_growth_largest_vs_smallest": round(largest["reduce"]["peak_rss_mb"] / smallest["reduce"]["peak_rss_mb"], 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
