"""SAE training throughput: the product's trainer (topics/sae.py: auxK bookkeeping, gradient projection, clipping,
decoder renormalisation, warm-up schedule, BatchTopK threshold) vs a plain PyTorch loop of the same model (MSE,
backward, Adam step, nothing else), in the same run on the same batches.

Reported per architecture: embeddings/s of each and the ratio trainer / plain (1.0 = no overhead). The first
steps are warm-up and not timed.

Usage: python benchmarks/bench_sae_training.py [--dim 768] [--expansion 16] [--k 32] [--batch 1024] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from laion_audit.topics.sae import SAEConfig, SAETrainer, build_sae


def plain_loop(sae, batches, lr):
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    for x in batches:
        loss = (x - sae(x)).pow(2).sum(dim=-1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def product_loop(sae, batches, config):
    trainer = SAETrainer(sae, config)
    for x in batches:
        trainer.step(x)


def timed(run, batches, warmup: int) -> float:
    run(batches[:warmup])
    start = time.perf_counter()
    run(batches[warmup:])
    return sum(len(b) for b in batches[warmup:]) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--expansion", type=int, default=16)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    config = SAEConfig(expansion=args.expansion, k=args.k, batch_size=args.batch, steps=args.steps)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(args.batch, args.dim, generator=g) for _ in range(args.steps + args.warmup)]
    results = {}
    for architecture in ("topk", "batch_topk"):
        plain = timed(lambda bs: plain_loop(build_sae(architecture, args.dim, config, 0), bs, config.lr),
                      batches, args.warmup)
        product = timed(lambda bs: product_loop(build_sae(architecture, args.dim, config, 0), bs, config),
                        batches, args.warmup)
        results[architecture] = {"trainer_embeddings_per_s": round(product, 1),
                                 "plain_loop_embeddings_per_s": round(plain, 1),
                                 "ratio_trainer_over_plain": round(product / plain, 3)}
    print(json.dumps({"settings": vars(args), "threads": torch.get_num_threads(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
