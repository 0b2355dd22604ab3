"""Where things live and how runs execute: one object, read from the environment in one place.

Every setting has an embedded default that works on a laptop (local folders under the user's data folder,
ops/user_dirs.py, whichever directory a command runs from; in-process friendly executors, the tiny model
profile), and one environment variable that a deployment overrides. `Settings.from_env()` is called by the code location's entry point (definitions.py) and
the CLI, never at import: the definitions factory takes a Settings object, so tests and the demo build
definitions for their own folders without touching the environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from laion_audit.ops.user_dirs import default_home

EXECUTORS = ("multiprocess", "in_process", "k8s")


class SettingsError(ValueError):
    """A setting has a value the project cannot run with; the message names the environment variable."""
_DEFAULT_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
_DEFAULT_TOLERATIONS = ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)


@dataclass(frozen=True)
class GpuSettings:
    """What a GPU step asks Kubernetes for; a cluster names its own node labels and taints here."""

    gpus_per_step: int = 1
    node_selector: Mapping[str, str] = field(default_factory=lambda: dict(_DEFAULT_NODE_SELECTOR))
    tolerations: tuple[Mapping[str, Any], ...] = _DEFAULT_TOLERATIONS
    shm_size: str = "16Gi"
    step_memory: str = "48Gi"
    shards_per_run: int = 16

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GpuSettings:
        return cls(
            gpus_per_step=_number(env, "LAION_AUDIT_GPUS_PER_STEP", "1", int),
            node_selector=_json(env, "LAION_AUDIT_GPU_NODE_SELECTOR", _DEFAULT_NODE_SELECTOR),
            tolerations=tuple(_json(env, "LAION_AUDIT_GPU_TOLERATIONS", _DEFAULT_TOLERATIONS)),
            shm_size=env.get("LAION_AUDIT_GPU_SHM_SIZE", "16Gi"),
            step_memory=env.get("LAION_AUDIT_GPU_STEP_MEMORY", "48Gi"),
            shards_per_run=_number(env, "LAION_AUDIT_GPU_SHARDS_PER_RUN", "16", int),
        )


def _number(env: Mapping[str, str], variable: str, default: str, kind: type):
    raw = env.get(variable, default)
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{variable} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None


def _json(env: Mapping[str, str], variable: str, default):
    raw = env.get(variable)
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{variable} must be JSON: {exc.msg} at position {exc.pos}") from None


@dataclass(frozen=True)
class Settings:
    home: str
    shards_root: str
    store_root: str
    executor: str = "multiprocess"
    register_batch: int = 1000
    max_partitions_per_run: int = 8
    model_profile: str = "tiny"
    models_dir: str = ""
    trained_dir: str = ""
    # A shard file without img2dataset's _stats.json is registered once its size and mtime (or ETag) have not
    # changed for this long: a file still being copied is not ingested half-way.
    settle_seconds: float = 120.0
    # How often the discovery and chain sensors look for work.
    sensor_interval_seconds: int = 60
    # Evaluate the per-partition lineage checks automatically after each materialization. Each evaluation is a
    # run of its own (checks cannot run over partition ranges), so clusters turn this off and run
    # lineage_checks_job or `laion-audit stale` instead.
    check_automation: bool = True
    gpu: GpuSettings = field(default_factory=GpuSettings)
    # A face-ratings folder in the One Million Impressions layout for the facial impression audit (CC BY-NC-SA
    # data the user supplies; never bundled). Empty: the assets' run config must name one.
    omi_dir: str = ""

    def __post_init__(self):
        from laion_audit.models.registry import PROFILES

        if self.executor not in EXECUTORS:
            raise SettingsError(f"LAION_AUDIT_EXECUTOR must be one of {EXECUTORS}, got {self.executor!r}")
        if self.model_profile not in PROFILES:
            raise SettingsError(f"LAION_AUDIT_MODEL_PROFILE must be one of {sorted(PROFILES)}, got {self.model_profile!r}")
        for variable, value, low in (("LAION_AUDIT_REGISTER_BATCH", self.register_batch, 1),
                                     ("LAION_AUDIT_MAX_PARTITIONS_PER_RUN", self.max_partitions_per_run, 1),
                                     ("LAION_AUDIT_SENSOR_INTERVAL", self.sensor_interval_seconds, 1),
                                     ("LAION_AUDIT_SETTLE_SECONDS", self.settle_seconds, 0),
                                     ("LAION_AUDIT_GPU_SHARDS_PER_RUN", self.gpu.shards_per_run, 1),
                                     ("LAION_AUDIT_GPUS_PER_STEP", self.gpu.gpus_per_step, 0)):
            if value < low:
                raise SettingsError(f"{variable} must be at least {low}, got {value}")
        # Frozen dataclass: fill the folders derived from `home` when they were not given.
        if not self.models_dir:
            object.__setattr__(self, "models_dir", f"{self.home}/models/{self.model_profile}")
        if not self.trained_dir:
            object.__setattr__(self, "trained_dir", f"{self.home}/trained_models")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = default_home(env)
        profile = env.get("LAION_AUDIT_MODEL_PROFILE", "tiny")
        return cls(
            home=home,
            shards_root=env.get("LAION_AUDIT_SHARDS", f"{home}/shards"),
            store_root=env.get("LAION_AUDIT_STORE", f"{home}/store"),
            executor=env.get("LAION_AUDIT_EXECUTOR", "multiprocess"),
            register_batch=_number(env, "LAION_AUDIT_REGISTER_BATCH", "1000", int),
            max_partitions_per_run=_number(env, "LAION_AUDIT_MAX_PARTITIONS_PER_RUN", "8", int),
            model_profile=profile,
            models_dir=env.get("LAION_AUDIT_MODELS_DIR", f"{home}/models/{profile}"),
            trained_dir=env.get("LAION_AUDIT_TRAINED_DIR", f"{home}/trained_models"),
            settle_seconds=_number(env, "LAION_AUDIT_SETTLE_SECONDS", "120", float),
            sensor_interval_seconds=_number(env, "LAION_AUDIT_SENSOR_INTERVAL", "60", int),
            check_automation=env.get("LAION_AUDIT_CHECK_AUTOMATION", "1") not in ("0", "false", "no"),
            gpu=GpuSettings.from_env(env),
            omi_dir=env.get("LAION_AUDIT_OMI_DIR", ""),
        )
