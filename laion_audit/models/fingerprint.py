"""A model's identity is the sha256 of its weight files, not its name: two checkpoints called yolo11l.pt
that differ by one byte are different models, and lineage must say so."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".onnx")


def fingerprint_path(path: str | Path) -> str:
    """sha256 of a weight file's bytes, or over a folder's weight files (sorted relative names, then bytes)."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_file():
        _update(digest, path)
        return digest.hexdigest()
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no weight files ({', '.join(WEIGHT_SUFFIXES)}) under {path}")
    for file in files:
        digest.update(str(file.relative_to(path)).encode())
        _update(digest, file)
    return digest.hexdigest()


def _update(digest, file: Path) -> None:
    with file.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)

