"""The command line leaves no cache folder where it runs and prints no floods of blank lines."""

import os
import subprocess
import sys
from pathlib import Path

from laion_audit.ops.offline import apply_offline_environment

BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parents[1]
CACHES = {"HF_HOME": "hf", "TORCH_HOME": "torch", "MPLCONFIGDIR": "matplotlib", "YOLO_CONFIG_DIR": "ultralytics"}


def _env(home: Path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in CACHES and not k.startswith(("LAION_AUDIT_", "XDG_")) and k != "DAGSTER_HOME"}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])), **extra)
    return env


def test_a_cli_command_writes_nothing_into_the_working_directory(tmp_path):
    cwd, home = tmp_path / "cwd", tmp_path / "user"
    cwd.mkdir()
    result = subprocess.run(["laion-audit", "init"], cwd=cwd, env=_env(home), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert list(cwd.iterdir()) == []
    # Without LAION_AUDIT_HOME: the user's data and cache folders (XDG defaults under HOME).
    assert (home / ".local" / "share" / "laion_audit" / "dagster_home" / "dagster.yaml").is_file()
    assert {p.name for p in (home / ".cache" / "laion_audit").iterdir()} == set(CACHES.values())
    assert "\n\n\n" not in result.stdout


def test_library_caches_follow_laion_audit_home(tmp_path, monkeypatch):
    for name in CACHES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("LAION_AUDIT_CACHE", raising=False)
    monkeypatch.setenv("LAION_AUDIT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    cache = apply_offline_environment()
    assert cache == tmp_path / "home" / "cache"
    assert {name: os.environ[name] for name in CACHES} == {
        name: str(tmp_path / "home" / "cache" / sub) for name, sub in CACHES.items()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_building_a_tokenizer_prints_no_progress_lines(capfd):
    from laion_audit.models.tiny import _train_tokenizer

    _train_tokenizer(["<|end|>"], eos_token="<|end|>")
    out, err = capfd.readouterr()
    assert out.strip() == "" and "\n\n" not in out + err
