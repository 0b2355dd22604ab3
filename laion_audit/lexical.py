"""Loading word lists: the project's own (by name) and third-party ones (by path).

Third-party lists (So-B-IT, Guilbeault et al.) are not redistributed here; users point at their copy. The
So-B-IT taxonomy circulates as a Python file defining a dict, so it is parsed with ``ast.literal_eval`` and
never executed.
"""

from __future__ import annotations

import ast
import importlib.resources
import json
from pathlib import Path
from typing import Any

_PACKAGE = "laion_audit.lexical_data"


def _read_text(name_or_path: str | Path, suffix: str) -> tuple[str, str]:
    path = Path(name_or_path)
    if path.suffix or path.is_absolute() or len(path.parts) > 1:
        if not path.is_file():
            raise FileNotFoundError(f"word list not found: {path}")
        return path.read_text(encoding="utf-8"), str(path)
    resource = importlib.resources.files(_PACKAGE).joinpath(f"{name_or_path}{suffix}")
    if not resource.is_file():
        raise FileNotFoundError(f"no shipped list named {name_or_path!r} (looked for lexical_data/{name_or_path}{suffix})")
    return resource.read_text(encoding="utf-8"), str(resource)


def load_word_list(name_or_path: str | Path) -> list[str]:
    """One term per line, lower-cased; blank and ``#`` lines dropped; duplicates removed, order kept."""
    text, _ = _read_text(name_or_path, ".txt")
    seen: dict[str, None] = {}
    for line in text.splitlines():
        term = line.strip().lower()
        if term and not term.startswith("#"):
            seen.setdefault(term, None)
    return list(seen)


def load_json_lexicon(name_or_path: str | Path) -> dict[str, Any]:
    text, _ = _read_text(name_or_path, ".json")
    data = json.loads(text)
    return {k: v for k, v in data.items() if not k.startswith("_")}


def load_identity_terms(path: str | Path | None = None) -> dict[str, dict[str, list[str]]]:
    """{"gender": {group: [terms]}, "race": {group: [terms]}}."""
    return load_json_lexicon(path or "identity_terms")


def load_sobit_taxonomy(path: str | Path) -> dict[str, list[str]]:
    """So-B-IT's {category: [words]} from a JSON file or a .py file that assigns ``sobit_taxonomy = {...}``."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        for node in ast.parse(text).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "sobit_taxonomy" for t in node.targets
            ):
                data = ast.literal_eval(node.value)
                break
        else:
            raise ValueError(f"{path} does not assign a literal `sobit_taxonomy` dict")
    else:
        data = json.loads(text)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"{path} is not a {{category: [words]}} mapping")
    return {str(category): [str(w).strip().lower() for w in words] for category, words in data.items()}


def load_guilbeault_categories(path: str | Path) -> list[str]:
    """Guilbeault et al.'s social categories: one term per line."""
    return load_word_list(Path(path))
