"""The Helm values keep the deployment's invariants (checked on the YAML; the chart itself is not rendered here)."""

from pathlib import Path

import yaml

VALUES = Path(__file__).resolve().parents[1] / "deployments" / "values.yaml"


def test_user_code_deployment_serves_this_location_with_config_in_runs():
    values = yaml.safe_load(VALUES.read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "laion_audit.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert deployment["image"]["pullPolicy"] == "Always"
    env = {item["name"]: item["value"] for item in deployment["env"]}
    assert env["LAION_AUDIT_EXECUTOR"] == "k8s" and env["LAION_AUDIT_MODEL_PROFILE"] == "paper"
    # GPU placement belongs to the GPU assets' op tags; copied onto every run pod it would waste GPU nodes.
    assert not deployment.get("nodeSelector") and not deployment.get("tolerations")
    assert "nvidia.com/gpu" not in str(deployment.get("resources"))


def test_external_postgres_and_crash_only_retries():
    values = yaml.safe_load(VALUES.read_text())
    assert values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlHost"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runRetries"]["retryOnAssetOrOpFailure"] is False
    assert values["telemetry"]["enabled"] is False
