"""The shipped Dagster instance configs pass Dagster's own instance-config validation."""

import shutil
from pathlib import Path

import pytest
from dagster._core.instance.config import dagster_instance_config

DEPLOYMENTS = Path(__file__).resolve().parents[1] / "deployments"


@pytest.mark.parametrize("name", ["dagster.local.yaml", "dagster.k8s.yaml"])
def test_instance_config_validates(tmp_path, name):
    shutil.copy(DEPLOYMENTS / name, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["telemetry"]["enabled"] is False


def test_cluster_config_uses_postgres_k8s_launcher_and_crash_only_retries(tmp_path):
    shutil.copy(DEPLOYMENTS / "dagster.k8s.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert "postgres" in config["storage"]
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["run_retries"]["retry_on_asset_or_op_failure"] is False
    assert config["concurrency"]["pools"]["granularity"] == "run"
    assert config["backfills"]["use_threads"] is True
