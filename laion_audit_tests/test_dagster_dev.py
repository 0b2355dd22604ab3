"""`dagster dev` from the repository root serves this code location on loopback."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
QUERY = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } "\
        "assetNodes { assetKey { path } } } } } }"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_dagster_dev(port: int, env: dict, output) -> subprocess.Popen:
    """`dagster dev` from the repository root in its own process group, SIGINT restored (see offline_stack)."""
    dagster = Path(sys.executable).with_name("dagster")
    return subprocess.Popen(
        [str(dagster), "dev", "-p", str(port)], cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def stop_dagster_dev(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def _graphql(port: int) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


@pytest.mark.slow
def test_dagster_dev_serves_the_code_location_on_loopback(tmp_path):
    port = _free_port()
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "LAION_AUDIT_HOME": str(tmp_path / "home")}
    process = start_dagster_dev(port, env, subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        payload = None
        while time.monotonic() < deadline:
            try:
                payload = _graphql(port)
                if payload.get("data", {}).get("repositoriesOrError", {}).get("nodes"):
                    break
            except OSError:
                pass
            time.sleep(1)
        assert payload, "dagster dev did not answer within 120 s"
        nodes = payload["data"]["repositoriesOrError"]["nodes"]
        assert nodes[0]["location"]["name"] == "laion_audit"
        assert ["samples"] in [node["assetKey"]["path"] for node in nodes[0]["assetNodes"]]
        listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        bound = [line.split()[3] for line in listening.splitlines() if line.split()[3].endswith(f":{port}")]
        assert bound and all(addr.startswith("127.0.0.1") for addr in bound), bound
    finally:
        stop_dagster_dev(process)
