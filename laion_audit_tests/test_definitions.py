"""The code location loads, and its asset keys do not change silently (keys are lineage identity)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from laion_audit.definitions import build_definitions

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def _describe(defs) -> dict:
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assets = {}

    def partitions(definition):
        if definition is None:
            return None
        return getattr(definition, "name", None) or "static: " + ", ".join(definition.get_partition_keys())

    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "partitions": partitions(node.partitions_def),
            "code_version": node.code_version,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "group": node.group_name,
        }
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "schedules": sorted(s.name for s in repo.schedule_defs),
    }


def test_definitions_load():
    defs = build_definitions()
    assert defs.resolve_job_def("shard_ingest_job") is not None


def test_definitions_match_snapshot():
    current = _describe(build_definitions())
    if os.environ.get("LAION_AUDIT_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert current == expected, (
        "asset keys, partitions, code versions or jobs changed; if intended, rerun with "
        "LAION_AUDIT_UPDATE_SNAPSHOTS=1 and commit the snapshot (renaming a key orphans its history)"
    )


@pytest.mark.slow
def test_dagster_definitions_validate_cli(tmp_path):
    repo_root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed validation" in result.stdout + result.stderr


@pytest.mark.parametrize(("executor", "name"), [("in_process", "in_process"), ("multiprocess", "multiprocess"),
                                                ("k8s", "k8s")])
def test_one_setting_chooses_the_executor(tmp_path, executor, name):
    from dataclasses import replace

    from laion_audit.ops.settings import Settings

    settings = replace(Settings.from_env(), executor=executor)
    job = build_definitions(settings).resolve_job_def("person_detection_job")
    assert job.executor_def.name.startswith(name)
    if executor == "k8s":
        from dagster._config import process_config
        from dagster_k8s import k8s_job_executor

        from laion_audit.definitions import K8S_EXECUTOR_CONFIG

        processed = process_config(k8s_job_executor.config_schema.config_type, K8S_EXECUTOR_CONFIG)
        assert processed.success, processed.errors
        assert processed.value["step_k8s_config"]["job_spec_config"]["backoff_limit"] == 0
