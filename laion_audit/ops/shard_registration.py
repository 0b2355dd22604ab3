"""Shard partitions registered from the command line (`laion-audit shards register|list`), no daemon needed.

Registration ticks the discovery sensor itself and applies what it returns as the sensor daemon would (the
partition requests, and the `shard_files` observations that record each file's version), so the command, the
demo and a running daemon register the same keys, in the same sorted order, with the same file versions. The
run requests of a tick are not launched: the user materializes what they want (`dagster asset materialize
--partition KEY`), or a daemon's sensor and schedules do.

Dagster's own CLI answers a key that is not registered with "All selected assets must have a
PartitionsDefinition containing the passed partition key" and nothing else; :func:`explain_key` is the
explanation it lacks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from laion_audit.ops.settings import Settings

REGISTER_HINT = "laion-audit shards register"
DAGSTER_ERROR = "must have a PartitionsDefinition containing the passed partition key"


@dataclass
class Registration:
    added: list[str]
    registered: int
    # Why the last tick added nothing (the sensor's skip reason), e.g. no shard root or nothing new.
    note: str | None = None


def apply_sensor_result(instance, result, *, observations: bool = True) -> list[str]:
    """Apply a discovery-sensor tick to ``instance`` as the sensor daemon does; return the keys it added.

    ``observations=False`` adds the partitions only (the scale benchmark times partition registration alone).
    """
    added: list[str] = []
    for request in getattr(result, "dynamic_partitions_requests", None) or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        added += list(request.partition_keys)
    if observations:
        for event in getattr(result, "asset_events", None) or []:
            instance.report_runless_asset_event(event)
    return added


def _skip_note(result) -> str | None:
    note = getattr(result, "skip_message", None) or getattr(result, "skip_reason", None)
    return getattr(note, "skip_message", note) if note is not None else None


def register_shards(instance, settings: Settings, *, settle: bool = False) -> Registration:
    """Tick the discovery sensor until it finds nothing new (it registers `register_batch` keys per tick).

    ``settle=False`` registers every shard file present now: the caller says the files are complete. With
    ``settle=True`` the sensor's settle rule applies as configured, which needs the daemon's repeated ticks.
    """
    from dagster import build_sensor_context

    from laion_audit.definitions import build_definitions, build_resources
    from laion_audit.defs.partitions import shard_partitions

    if not settle:
        settings = dataclasses.replace(settings, settle_seconds=0)
    sensor = build_definitions(settings).resolve_sensor_def("shard_discovery_sensor")
    resources = build_resources(settings)
    added: list[str] = []
    cursor, note = None, None
    while True:
        with build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
            result = sensor(context)
        new = apply_sensor_result(instance, result)
        if not new:
            note = _skip_note(result)
            break
        added += new
        if len(new) < settings.register_batch:  # a tick registers up to register_batch: that was all
            break
        cursor = getattr(result, "cursor", None)
    return Registration(added, len(instance.get_dynamic_partitions(shard_partitions.name)), note)


@dataclass(frozen=True)
class ShardListing:
    key: str
    registered: bool
    file: str | None  # the shard's input file under the root, None when it is not there
    format: str | None


def list_shards(instance, settings: Settings) -> list[ShardListing]:
    """Every shard found under the shard root and every registered key, sorted by key."""
    from laion_audit.defs.partitions import shard_partitions
    from laion_audit.shards.sources import scan_shards

    try:
        found = scan_shards(settings.shards_root)[0]
    except FileNotFoundError:
        found = {}
    registered = set(instance.get_dynamic_partitions(shard_partitions.name))
    return [ShardListing(key, key in registered, found[key].url if key in found else None,
                         str(found[key].format) if key in found else None)
            for key in sorted(set(found) | registered)]


def explain_key(key: str, listing: Iterable[ShardListing], shards_root: str) -> str:
    """Why `dagster asset materialize --partition KEY` does or does not accept ``key``, and what to run."""
    entry = next((item for item in listing if item.key == key), None)
    if entry is None:
        return (f"{key}: no shard file under {shards_root} and not registered. Put the shard there (or set "
                f"LAION_AUDIT_SHARDS), then run `{REGISTER_HINT}`.")
    if not entry.registered:
        return (f"{key}: found ({entry.file}) but not registered as a partition, so `dagster asset materialize "
                f"--partition {key}` fails with Dagster's \"{DAGSTER_ERROR}\". Run `{REGISTER_HINT}` (or start "
                "the daemon: its discovery sensor registers new shards).")
    if entry.file is None:
        return f"{key}: registered, but its file is no longer under {shards_root}; a run of it will fail."
    return f"{key}: registered ({entry.file}); `dagster asset materialize --partition {key}` accepts it."
