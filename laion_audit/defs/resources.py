"""Dagster resources: thin configurable handles onto the Dagster-free store and shard listing."""


from dagster import ConfigurableResource

from laion_audit.shards.sources import (
    DEFAULT_SHARD_NUMBER_PATTERN,
    DiscoveryReport,
    ShardSource,
    locate_shard,
    scan_shards,
)
from laion_audit.shards.store import ShardStore


class ShardStoreResource(ConfigurableResource):
    """Root of the per-(asset, shard) parquet files: a local folder or any fsspec URI (s3://, gs://)."""

    root: str

    def store(self) -> ShardStore:
        return ShardStore(self.root)


class ShardInputsResource(ConfigurableResource):
    """Where new shards land (webdataset tars and/or LAION metadata parquet): folder or fsspec URI."""

    root: str
    name_pattern: str = DEFAULT_SHARD_NUMBER_PATTERN

    def discover(self) -> dict[str, ShardSource]:
        """The shards under the root; keys claimed by two files are left out (see `scan`)."""
        return scan_shards(self.root, self.name_pattern)[0]

    def scan(self) -> tuple[dict[str, ShardSource], DiscoveryReport]:
        return scan_shards(self.root, self.name_pattern)

    def locate(self, key: str) -> ShardSource:
        return locate_shard(self.root, key, self.name_pattern)
