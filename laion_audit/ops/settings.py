"""Where things live and how runs execute, read once from the environment.

Every setting has an embedded default that works on a laptop (local folders under ``.laion_audit`` in the
working directory, in-process friendly executors, the tiny model profile), and one environment variable that a
deployment overrides. Keeping them in one place is what lets the same Definitions serve `dagster dev` and a
Kubernetes cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

EXECUTORS = ("multiprocess", "in_process", "k8s")


@dataclass(frozen=True)
class Settings:
    home: str
    shards_root: str
    store_root: str
    executor: str
    register_batch: int
    max_partitions_per_run: int
    model_profile: str = "tiny"
    models_dir: str = ""
    trained_dir: str = ""

    def __post_init__(self):
        # Frozen dataclass: fill the folders derived from `home` when they were not given.
        if not self.models_dir:
            object.__setattr__(self, "models_dir", f"{self.home}/models/{self.model_profile}")
        if not self.trained_dir:
            object.__setattr__(self, "trained_dir", f"{self.home}/trained_models")

    @classmethod
    def from_env(cls) -> Settings:
        home = os.environ.get("LAION_AUDIT_HOME", str(Path.cwd() / ".laion_audit"))
        executor = os.environ.get("LAION_AUDIT_EXECUTOR", "multiprocess")
        profile = os.environ.get("LAION_AUDIT_MODEL_PROFILE", "tiny")
        if executor not in EXECUTORS:
            raise ValueError(f"LAION_AUDIT_EXECUTOR must be one of {EXECUTORS}, got {executor!r}")
        return cls(
            home=home,
            shards_root=os.environ.get("LAION_AUDIT_SHARDS", f"{home}/shards"),
            store_root=os.environ.get("LAION_AUDIT_STORE", f"{home}/store"),
            executor=executor,
            register_batch=int(os.environ.get("LAION_AUDIT_REGISTER_BATCH", "1000")),
            max_partitions_per_run=int(os.environ.get("LAION_AUDIT_MAX_PARTITIONS_PER_RUN", "8")),
            model_profile=profile,
            models_dir=os.environ.get("LAION_AUDIT_MODELS_DIR", f"{home}/models/{profile}"),
            trained_dir=os.environ.get("LAION_AUDIT_TRAINED_DIR", f"{home}/trained_models"),
        )
