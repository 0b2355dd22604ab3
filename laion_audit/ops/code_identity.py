"""Which code made an output: the package version and, when known, the git commit.

The per-asset ``code_version`` says when an asset's logic changed; this says which release and commit ran.
It is recorded in run tags, markers and parquet footers but is not part of a recipe: a commit that only edits
the README must not mark 41,408 shards stale. A container image has no ``.git``, so the Dockerfile passes the
commit in ``LAION_AUDIT_GIT_COMMIT``.
"""

from __future__ import annotations

import os
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

PACKAGE_VERSION_TAG = "laion_audit/package_version"
GIT_COMMIT_TAG = "laion_audit/git_commit"


@cache
def package_version() -> str:
    try:
        return metadata.version("laion_audit")
    except metadata.PackageNotFoundError:
        return "unknown"


@cache
def git_commit() -> str | None:
    """The commit of the checkout the package runs from (``-dirty`` when it has uncommitted changes)."""
    if os.environ.get("LAION_AUDIT_GIT_COMMIT"):
        return os.environ["LAION_AUDIT_GIT_COMMIT"]
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=checkout,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def code_identity() -> dict[str, str | None]:
    return {"package_version": package_version(), "git_commit": git_commit()}


def code_identity_tags() -> dict[str, str]:
    """Run tags naming the code; Dagster tag values must be non-empty strings."""
    identity = code_identity()
    tags = {PACKAGE_VERSION_TAG: identity["package_version"] or "unknown"}
    if identity["git_commit"]:
        tags[GIT_COMMIT_TAG] = identity["git_commit"]
    return tags
