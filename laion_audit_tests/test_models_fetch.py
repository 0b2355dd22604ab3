"""`laion-audit models fetch` fails clearly offline and never falls back to anything."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from laion_audit.models.fetch import FetchError, fetch_profile


def test_fetch_offline_names_the_model_and_the_cause(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # YOLO first: put a file where ultralytics would download, so the first real fetch is a hub one.
    (tmp_path / "yolo").mkdir()
    (tmp_path / "yolo" / "yolo11l.pt").write_bytes(b"staged by hand")
    with pytest.raises(FetchError, match=r"classifier_backbone \(ViT-B-16-SigLIP/webli\).*connected machine"):
        fetch_profile("paper", tmp_path)
    assert not (tmp_path / "manifest.json").exists()


def test_tiny_profile_is_built_not_fetched(tmp_path):
    with pytest.raises(ValueError, match="init-tiny"):
        fetch_profile("tiny", tmp_path)


def test_cli_exit_code_and_message_offline(tmp_path):
    (tmp_path / "yolo").mkdir()
    (tmp_path / "yolo" / "yolo11l.pt").write_bytes(b"staged by hand")
    cli = Path(sys.executable).with_name("laion-audit")
    result = subprocess.run([str(cli), "models", "fetch", "--profile", "paper", str(tmp_path)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2
    assert "could not download classifier_backbone" in result.stderr
