"""A model's identity is the sha256 of its weight files, not its name: two checkpoints called yolo11l.pt
that differ by one byte are different models, and lineage must say so."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".onnx")


def fingerprint_path(path: str | Path) -> str:
    """sha256 over the weight files under ``path`` (sorted relative names, then bytes), or of the file itself."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_file():
        files = [path]
        root = path.parent
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
        root = path
        if not files:
            raise FileNotFoundError(f"no weight files ({', '.join(WEIGHT_SUFFIXES)}) under {path}")
    for file in files:
        digest.update(str(file.relative_to(root)).encode())
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def short(fingerprint: str) -> str:
    return fingerprint[:16]
