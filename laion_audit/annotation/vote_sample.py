"""Which valid persons the MLLM ensemble is asked about: each one on its own, by a seeded hash under a rate.

A person is in the votes sample when ``sha256(seed, shard, key, box_id)``, read as a number in [0, 1), falls
under ``rate``. The decision depends on nothing but that person's identity and the seed, so the sample is
uniform over valid persons across the whole dataset (a fixed count per shard over-samples sparse shards), the
same seed always gives the same sample, and adding shards, images or other persons never changes whether an
already-sampled person is in it. Raising the rate only adds persons.
"""

from __future__ import annotations

import hashlib

from laion_audit.annotation.crops import PersonBox

# Named in the votes recipe: a different selection rule must not reuse markers written under this one.
SAMPLE_SCHEME = "sha256(seed|shard|key|box_id) < rate"
_SPAN = float(1 << 64)


def sample_point(seed: int, shard: str, key: str, box_id: int) -> float:
    """The person's fixed position in [0, 1) for this seed; the person is sampled at any rate above it."""
    digest = hashlib.sha256(f"{seed}\x1f{shard}\x1f{key}\x1f{box_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SPAN


def is_sampled(seed: int, rate: float, shard: str, key: str, box_id: int) -> bool:
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"sample rate must be in (0, 1], got {rate}")
    return sample_point(seed, shard, key, box_id) < rate


def sample_boxes(boxes: list[PersonBox], *, rate: float, seed: int, shard: str) -> list[PersonBox]:
    """The boxes of ``shard`` in the votes sample, in their original order."""
    return [box for box in boxes if is_sampled(seed, rate, shard, box.key, box.box_id)]
