"""Loading word lists: the project's own (by name) and third-party ones (by path).

This module is Dagster-free so the audits, the sample-data generator and the tests share one definition of
what a list contains. The project's lists ship inside the package (``laion_audit.lexical_data``) and are read
through ``importlib.resources``, so they work from a wheel, a zip or an editable install alike.

Third-party lists (the So-B-IT taxonomy, the social categories of Guilbeault et al.) are not redistributed:
their licences are their authors'. Users point the loaders at their own copy. So-B-IT circulates as a Python
file that defines a dict; it is parsed with ``ast.literal_eval`` and never executed, because a word list must
not be able to run code.
"""

from __future__ import annotations

import ast
import importlib.resources
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

LEXICAL_PACKAGE = "laion_audit.lexical_data"

IdentityTerms = dict[str, dict[str, list[str]]]


def _is_bare_name(name_or_path: str | Path) -> bool:
    """A shipped list is asked for by a bare name ("crime_words"); anything else is a path.

    ``Path`` objects are always paths, so ``Path("crime_words")`` means a file of that name in the working
    directory, never the shipped list.
    """
    if isinstance(name_or_path, Path):
        return False
    return "/" not in name_or_path and "\\" not in name_or_path and not Path(name_or_path).suffix


def _read_list_text(name_or_path: str | Path, suffix: str) -> str:
    if _is_bare_name(name_or_path):
        resource = importlib.resources.files(LEXICAL_PACKAGE).joinpath(f"{name_or_path}{suffix}")
        if not resource.is_file():
            raise FileNotFoundError(
                f"no shipped list named {name_or_path!r} (looked for lexical_data/{name_or_path}{suffix} in "
                f"package {LEXICAL_PACKAGE}); pass a path to load your own file"
            )
        return resource.read_text(encoding="utf-8-sig")
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"word list not found: {path}")
    # utf-8-sig: lists saved by spreadsheet tools often start with a byte-order mark.
    return path.read_text(encoding="utf-8-sig")


def _normalise(terms: Iterable[str]) -> list[str]:
    """Strip and lower-case; drop blanks and ``#`` comments; keep the first of each duplicate, in order."""
    seen: dict[str, None] = {}
    for raw in terms:
        term = raw.strip().lower()
        if term and not term.startswith("#"):
            seen.setdefault(term, None)
    return list(seen)


def load_word_list(name_or_path: str | Path) -> list[str]:
    """A list of terms, one per line: a shipped list by bare name (``"crime_words"``) or any file by path.

    Terms are lower-cased because every audit matches case-insensitively; duplicates are removed (first
    occurrence kept) so a count over terms never counts one word twice.
    """
    return _normalise(_read_list_text(name_or_path, ".txt").splitlines())


def load_json_lexicon(name_or_path: str | Path) -> dict[str, Any]:
    """A shipped JSON lexicon by bare name or a JSON file by path; top-level keys starting with ``_`` are notes."""
    data = json.loads(_read_list_text(name_or_path, ".json"))
    if not isinstance(data, dict):
        raise ValueError(f"{name_or_path}: expected a JSON object at the top level")
    return {key: value for key, value in data.items() if not key.startswith("_")}


def load_identity_terms(path: str | Path | None = None) -> IdentityTerms:
    """``{"gender": {group: [terms]}, "race": {group: [terms]}}``: the shipped terms, or a file of the same shape.

    The shape is checked here, so an audit given a malformed file fails at load time naming the file rather
    than silently matching nothing for a group.
    """
    source = "identity_terms" if path is None else Path(path)
    data = load_json_lexicon(source)
    terms: IdentityTerms = {}
    for axis in ("gender", "race"):
        groups = data.get(axis)
        if not isinstance(groups, dict) or not groups:
            raise ValueError(f"{source}: expected a non-empty object under {axis!r}")
        terms[axis] = {}
        for group, words in groups.items():
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise ValueError(f"{source}: {axis}.{group} must be a list of strings")
            terms[axis][str(group)] = _normalise(words)
    return terms


def _sobit_from_python(path: Path, text: str) -> Any:
    for node in ast.parse(text, filename=str(path)).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "sobit_taxonomy" for t in targets):
            try:
                return ast.literal_eval(value)
            except ValueError as error:
                raise ValueError(f"{path}: `sobit_taxonomy` is not a literal dict ({error})") from None
    raise ValueError(f"{path} does not assign `sobit_taxonomy = {{...}}`")


def load_sobit_taxonomy(path: str | Path) -> dict[str, list[str]]:
    """So-B-IT's ``{category: [words]}`` from a JSON file or from the ``.py`` file that defines ``sobit_taxonomy``.

    Category names keep their spelling (they label published tables); words are stripped and lower-cased
    like every other list here.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"So-B-IT taxonomy not found: {path}")
    text = path.read_text(encoding="utf-8-sig")
    data = _sobit_from_python(path, text) if path.suffix == ".py" else json.loads(text)
    if not isinstance(data, dict) or not all(
        isinstance(words, (list, tuple)) and all(isinstance(w, str) for w in words) for words in data.values()
    ):
        raise ValueError(f"{path} is not a {{category: [words]}} mapping")
    return {str(category): _normalise(words) for category, words in data.items()}


def load_guilbeault_categories(path: str | Path) -> list[str]:
    """The social categories of Guilbeault et al.: a text file, one term per line.

    Always read as a path (never a shipped list), lower-cased and de-duplicated like ``load_word_list``.
    """
    return load_word_list(Path(path))


def term_pattern(terms: Iterable[str], *, word_boundary: bool = True) -> re.Pattern[str]:
    """One regex matching any of ``terms`` in lower-cased text.

    With ``word_boundary`` a term only matches when neither neighbour is a word character (so "hot" does not
    match "photo", and "f*ck" still matches despite its asterisk); without it, it is Birhane et al.'s plain
    substring match. Longer terms come first so a phrase wins over a word it contains.
    """
    from laion_audit.audits.text_matching import term_pattern as single_term_pattern

    ordered = sorted(set(terms), key=lambda t: (-len(t), t))
    if not ordered:
        return re.compile(r"(?!x)x")  # matches nothing
    mode = "word" if word_boundary else "substring"
    return re.compile("|".join(single_term_pattern(t, mode) for t in ordered))
