"""The one partitioning of this project: LAION shards, keyed 00000..41407 and registered by a sensor."""

from dagster import DynamicPartitionsDefinition

shard_partitions = DynamicPartitionsDefinition(name="laion_shards")
