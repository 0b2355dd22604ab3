"""Deterministic LAION-like sample shards (see generate.py)."""

from laion_audit.sample_data.generate import caption_statistics, write_sample_shards, write_webdataset_shard

__all__ = ["caption_statistics", "write_sample_shards", "write_webdataset_shard"]
