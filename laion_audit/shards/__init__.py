"""Shards in, shard files out: finding shards, reading them into rows, and the per-(asset, shard) store."""
