"""Where the project keeps things when the user did not say: the platform's per-user folders, never the cwd.

A command run from any directory then reads and writes the same home (shards, store, models, DAGSTER_HOME of
`laion-audit init`) and leaves no folder behind where it was run. `LAION_AUDIT_HOME` and `LAION_AUDIT_CACHE`
override both; the library caches (Hugging Face, torch, matplotlib, ultralytics) go under the cache folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import platformdirs

APP = "laion_audit"


def default_home(env: Mapping[str, str] | None = None) -> str:
    """$LAION_AUDIT_HOME, else the user data folder (~/.local/share/laion_audit on Linux)."""
    env = os.environ if env is None else env
    return env.get("LAION_AUDIT_HOME") or platformdirs.user_data_dir(APP, appauthor=False)


def default_cache(env: Mapping[str, str] | None = None) -> Path:
    """$LAION_AUDIT_CACHE, else $LAION_AUDIT_HOME/cache, else the user cache folder (~/.cache/laion_audit)."""
    env = os.environ if env is None else env
    if env.get("LAION_AUDIT_CACHE"):
        return Path(env["LAION_AUDIT_CACHE"])
    if env.get("LAION_AUDIT_HOME"):
        return Path(env["LAION_AUDIT_HOME"]) / "cache"
    return Path(platformdirs.user_cache_dir(APP, appauthor=False))
