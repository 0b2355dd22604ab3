"""The partitionings of this project: LAION shards (keyed 00000..41407, registered by a sensor), and the
registry's CLIP models for assets computed once per model."""

from dagster import DynamicPartitionsDefinition, StaticPartitionsDefinition

from laion_audit.models.registry import clip_roles, sd_roles

shard_partitions = DynamicPartitionsDefinition(name="laion_shards")


def clip_model_partitions(profile: str) -> StaticPartitionsDefinition:
    """One partition per `clip_*` role of the profile (its role name is the partition key)."""
    return StaticPartitionsDefinition(clip_roles(profile))


def sd_model_partitions(profile: str) -> StaticPartitionsDefinition:
    """One partition per Stable Diffusion (`sd_*`) role of the profile."""
    return StaticPartitionsDefinition(sd_roles(profile))
