"""A new user's first steps, each as its own process: `laion-audit init`, `laion-audit shards register`,
`dagster asset materialize` of one partition, from an empty working directory that stays empty."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Library cache locations the test session points at its own folder; a user has none of them set.
CACHE_VARIABLES = ("LAION_AUDIT_CACHE", "HF_HOME", "TORCH_HOME", "MPLCONFIGDIR", "YOLO_CONFIG_DIR")


def _user_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARIABLES and not k.startswith("LAION_AUDIT_")}
    env.update({"DAGSTER_HOME": str(tmp_path / "dagster_home"), "LAION_AUDIT_HOME": str(tmp_path / "home"),
                "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))})
    return env


def _run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def _no_blank_flood(text: str) -> None:
    assert "\n\n\n" not in text, f"runs of blank lines in:\n{text}"


@pytest.mark.slow
def test_init_register_and_materialize_one_partition_from_an_empty_directory(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = _user_env(tmp_path)
    dagster_home = Path(env["DAGSTER_HOME"])

    init = _run(["laion-audit", "init"], env, cwd)
    assert (dagster_home / "dagster.yaml").read_text() == (REPO_ROOT / "deployments" / "dagster.local.yaml").read_text()
    assert f"export DAGSTER_HOME={dagster_home}" in init.stdout

    shards = Path(env["LAION_AUDIT_HOME"]) / "shards"
    _run(["laion-audit", "sample-data", str(shards), "--tar-shards", "1", "--samples-per-shard", "3",
          "--metadata-rows", "10"], env, cwd)

    # Before registration Dagster's CLI refuses the key; `shards list KEY` says why and what to run.
    refused = subprocess.run(["dagster", "asset", "materialize", "-m", "laion_audit.definitions", "--select",
                              "samples", "--partition", "00000"], env=env, cwd=cwd, capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode != 0 and "partition key" in refused.stdout + refused.stderr
    explained = subprocess.run(["laion-audit", "shards", "list", "0"], env=env, cwd=cwd, capture_output=True,
                               text=True, timeout=120)
    assert explained.returncode == 1
    assert "not registered" in explained.stdout and "laion-audit shards register" in explained.stdout

    register = _run(["laion-audit", "shards", "register"], env, cwd)
    assert "registered 3 shard partitions" in register.stdout, register.stdout
    listed = _run(["laion-audit", "shards", "list"], env, cwd)
    assert listed.stdout.count(" registered ") == 3 and "NOT registered" not in listed.stdout

    materialize = _run(["dagster", "asset", "materialize", "-m", "laion_audit.definitions", "--select", "samples",
                        "--partition", "00000"], env, cwd)
    assert "RUN_SUCCESS" in materialize.stdout + materialize.stderr

    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        assert instance.get_materialized_partitions(AssetKey("samples")) == {"00000"}
    for result in (init, register, listed):
        _no_blank_flood(result.stdout + result.stderr)
    # Caches (ultralytics settings, matplotlib, Hugging Face) went under LAION_AUDIT_HOME, not the cwd.
    assert list(cwd.iterdir()) == []


def test_without_dagster_home_register_says_what_to_run(tmp_path):
    env = _user_env(tmp_path)
    del env["DAGSTER_HOME"]
    result = subprocess.run(["laion-audit", "shards", "register"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert "DAGSTER_HOME is not set" in result.stderr and "laion-audit init" in result.stderr


def test_init_keeps_a_different_instance_config_unless_forced(tmp_path):
    env = _user_env(tmp_path)
    dagster_home = Path(env["DAGSTER_HOME"])
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    kept = _run(["laion-audit", "init"], env, tmp_path)
    assert "KEPT the existing" in kept.stdout
    assert (dagster_home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
    _run(["laion-audit", "init", "--force"], env, tmp_path)
    assert "max_concurrent_runs" in (dagster_home / "dagster.yaml").read_text()
