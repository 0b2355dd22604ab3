"""Deterministic LAION-like sample shards: people photos that ship with scikit-image and matplotlib pasted on
varied backgrounds, alt-texts with planted vocabulary, every kind of broken sample, and a LAION-400M metadata
parquet, with a manifest and a ground-truth table that tests read to predict the pipeline's results."""

from laion_audit.sample_data.bad_samples import BAD_KINDS
from laion_audit.sample_data.caption_counts import caption_hits, caption_statistics
from laion_audit.sample_data.generate import write_bad_shard, write_sample_shards, write_webdataset_shard
from laion_audit.sample_data.metadata_shard import write_metadata_shard

__all__ = [
    "BAD_KINDS",
    "caption_hits",
    "caption_statistics",
    "write_bad_shard",
    "write_metadata_shard",
    "write_sample_shards",
    "write_webdataset_shard",
]
