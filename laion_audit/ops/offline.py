"""Environment that keeps the ML stack from phoning home (hub downloads, analytics, auto-installs).

Set before the libraries are imported: the CLI, the tests and CI all call this. Values already set by the
user win, so a connected machine can still opt in to downloads (`laion-audit models fetch`).
"""

from __future__ import annotations

import os
from pathlib import Path

from laion_audit.ops.user_dirs import default_cache

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "DAGSTER_DISABLE_TELEMETRY": "1",
    "DAGSTER_DG_UPDATE_CHECK_ENABLED": "0",
    "DO_NOT_TRACK": "1",
    # Ultralytics' INFO lines (settings file created, model summaries) are not the user's business.
    "YOLO_VERBOSE": "False",
}


def apply_offline_environment(cache_dir: str | Path | None = None) -> Path:
    """Set the offline variables and point library caches at ``cache_dir`` (default: user_dirs.default_cache,
    never the working directory)."""
    cache = Path(cache_dir) if cache_dir else default_cache()
    for name, value in OFFLINE_ENV.items():
        os.environ.setdefault(name, value)
    for name, sub in (("HF_HOME", "hf"), ("TORCH_HOME", "torch"), ("MPLCONFIGDIR", "matplotlib"),
                      ("YOLO_CONFIG_DIR", "ultralytics")):
        if name not in os.environ:
            path = cache / sub
            path.mkdir(parents=True, exist_ok=True)
            os.environ[name] = str(path)
    return cache
