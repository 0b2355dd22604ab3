"""`laion-audit init`: the Dagster instance and folders a new user needs before `dagster dev`.

Dagster reads its instance configuration from $DAGSTER_HOME/dagster.yaml; without one it runs with defaults
(telemetry on, no run concurrency limit), and without DAGSTER_HOME the `dagster` CLI uses a throwaway instance
that forgets registered shards. This writes the project's local config (deployments/dagster.local.yaml: SQLite,
telemetry off, two runs at a time) into the user's DAGSTER_HOME, creates the shard and store folders, and says
which variables to export. An existing dagster.yaml that differs is left alone unless the user forces it.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from laion_audit.ops.settings import Settings


def local_instance_config() -> str:
    return importlib.resources.files("laion_audit.deployments").joinpath("dagster.local.yaml").read_text()


@dataclass
class InitResult:
    dagster_home: Path
    # "written", "unchanged" (already the project's config) or "kept" (a different config left in place)
    config: str


def init_instance(dagster_home: Path, settings: Settings, *, force: bool = False) -> InitResult:
    dagster_home = dagster_home.expanduser().resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    wanted = local_instance_config()
    if path.exists() and path.read_text() == wanted:
        state = "unchanged"
    elif path.exists() and not force:
        state = "kept"
    else:
        path.write_text(wanted)
        state = "written"
    for root in (settings.shards_root, settings.store_root):
        if "://" not in root:
            Path(root).mkdir(parents=True, exist_ok=True)
    return InitResult(dagster_home, state)


def next_steps(result: InitResult, settings: Settings) -> list[str]:
    config = {"written": "wrote", "unchanged": "already has", "kept": "KEPT the existing (different)"}[result.config]
    lines = [f"{result.dagster_home}: {config} dagster.yaml"
             + (" (pass --force to replace it with the project's local config)" if result.config == "kept" else ""),
             f"shards go in {settings.shards_root}, outputs in {settings.store_root}",
             "",
             "Use the same variables in every shell that runs dagster or laion-audit:",
             f"  export DAGSTER_HOME={result.dagster_home}",
             f"  export LAION_AUDIT_HOME={settings.home}"]
    if settings.shards_root != f"{settings.home}/shards":
        lines.append(f"  export LAION_AUDIT_SHARDS={settings.shards_root}")
    if settings.store_root != f"{settings.home}/store":
        lines.append(f"  export LAION_AUDIT_STORE={settings.store_root}")
    lines += ["Then:",
              "  laion-audit shards register      # shard files -> Dagster partitions (no daemon needed)",
              "  dagster asset materialize -m laion_audit.definitions --select samples --partition 00000",
              "  dagster dev                      # from the repository root (workspace.yaml); UI on 127.0.0.1:3000"]
    return lines
