"""Test-wide setup: offline environment before any ML library is imported, and a network guard."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from laion_audit.ops.offline import apply_offline_environment

from .network_guard import NetworkGuard

_CACHE = Path(tempfile.mkdtemp(prefix="laion_audit_test_cache_"))
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
apply_offline_environment(_CACHE)
os.environ.setdefault("LAION_AUDIT_HOME", str(_CACHE / "home"))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

_guard = NetworkGuard()


def pytest_sessionstart(session):
    _guard.install()


def pytest_sessionfinish(session, exitstatus):
    _guard.uninstall()


@pytest.fixture(autouse=True)
def no_network():
    """Fail the test if it tried to open a non-loopback connection, even if the error was swallowed."""
    before = len(_guard.attempts)
    yield _guard
    attempts = _guard.attempts[before:]
    if attempts:
        pytest.fail(f"network access attempted: {attempts}")


@pytest.fixture
def shared_data() -> Path:
    """../shared/data when this checkout sits beside it; tests that need it skip cleanly otherwise."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_shards(tmp_path_factory) -> Path:
    """The demo's sample shards, generated once per session (read-only for tests)."""
    from laion_audit.sample_data import write_sample_shards

    root = tmp_path_factory.mktemp("sample_shards")
    write_sample_shards(root)
    return root


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """The tiny model profile, built once per session through the real libraries (read-only for tests)."""
    from laion_audit.models.tiny import init_tiny_models

    root = tmp_path_factory.mktemp("tiny_models")
    init_tiny_models(root, seed=0)
    return root


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`laion-audit demo` run once per session in a subprocess, as a new user runs it: (workdir, result)."""
    import subprocess
    import sys

    workdir = tmp_path_factory.mktemp("demo") / "demo"
    cli = Path(sys.executable).with_name("laion-audit")
    result = subprocess.run([str(cli), "demo", "--workdir", str(workdir)], capture_output=True, text=True,
                            timeout=1500, env={**os.environ})
    return workdir, result
