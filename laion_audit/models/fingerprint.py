"""A model's identity is the sha256 of every file of its folder, not its name: two checkpoints called
yolo11l.pt that differ by one byte are different models, and so are two folders with the same weights but
another tokenizer, processor config, chat template or remote code — each changes what the model outputs.

Hashing a 16 GB checkpoint takes minutes, so `laion-audit models fetch` and `init-tiny` record a *stat
signature* (relative path, size, mtime in ns of every file) beside the fingerprint. A process trusts a recorded
fingerprint only while the folder's signature is exactly the recorded one; any file replaced, touched, added or
removed changes the signature and the folder is hashed again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# Bookkeeping that is not part of a model: the Hugging Face hub's local_dir metadata and lock files change on
# every download without changing the model.
IGNORED_DIRS = (".cache", ".git")
IGNORED_SUFFIXES = (".lock",)


def model_files(path: str | Path) -> list[Path]:
    """Every file that makes up the model at ``path`` (a file, or a folder's files in sorted order)."""
    path = Path(path)
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix not in IGNORED_SUFFIXES
                   and not any(part in IGNORED_DIRS for part in p.relative_to(path).parts))
    if not files:
        raise FileNotFoundError(f"no model files under {path}")
    return files


def stat_signature(path: str | Path) -> list[list]:
    """[[relative path, size, mtime_ns], ...] of the model's files: cheap to take, changes when any file does."""
    path = Path(path)
    base = path.parent if path.is_file() else path
    return [[str(f.relative_to(base)), (st := f.stat()).st_size, st.st_mtime_ns] for f in model_files(path)]


def fingerprint_path(path: str | Path) -> str:
    """sha256 of a file's bytes, or over a folder's files (each file's relative name, then its bytes)."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_file():
        _update(digest, path)
        return digest.hexdigest()
    for file in model_files(path):
        digest.update(str(file.relative_to(path)).encode())
        _update(digest, file)
    return digest.hexdigest()


def _update(digest, file: Path) -> None:
    with file.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
