"""The prompt pairs and the human inter-rater reliability of the 34 One Million Impressions attributes.

Both tables ship in lexical_data (provenance: lexical_data/facial_impressions.md): the prompts are Wolfe et
al.'s, one positive and one negative prompt per attribute; the IRR values are those printed in Peterson et al.
2022, in percent. A path loads a user's own table of the same shape.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.resources
import io
from dataclasses import dataclass
from pathlib import Path

PROMPTS = "facial_impression_prompts.csv"
HUMAN_IRR = "facial_impression_human_irr.csv"
_PACKAGE = "laion_audit.lexical_data"


@dataclass(frozen=True)
class PromptPair:
    attribute: str
    positive: str
    negative: str


def _read(name_or_path: str | Path) -> str:
    """A shipped table by file name, or a user's file by path.

    From a source checkout the repository's lexical_data/ is read first: an editable install may map the
    package to another checkout.
    """
    path = Path(name_or_path)
    if path.parent != Path("."):
        return path.read_text(encoding="utf-8-sig")
    checkout = Path(__file__).resolve().parents[2] / "lexical_data" / path.name
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8-sig")
    return importlib.resources.files(_PACKAGE).joinpath(path.name).read_text(encoding="utf-8-sig")


def _rows(text: str, columns: list[str], source: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != columns:
        raise ValueError(f"{source}: expected columns {columns}, found {reader.fieldnames}")
    rows = list(reader)
    names = [row[columns[0]] for row in rows]
    if len(set(names)) != len(names) or not all(names):
        raise ValueError(f"{source}: attribute names must be unique and non-empty")
    return rows


def load_prompt_pairs(name_or_path: str | Path = PROMPTS) -> list[PromptPair]:
    rows = _rows(_read(name_or_path), ["attribute", "positive", "negative"], str(name_or_path))
    return [PromptPair(row["attribute"], row["positive"], row["negative"]) for row in rows]


def load_human_irr(name_or_path: str | Path = HUMAN_IRR) -> dict[str, float]:
    """attribute -> IRR as a fraction in [0, 1] (the table is in percent; Wolfe et al. divide by 100)."""
    rows = _rows(_read(name_or_path), ["attribute", "human_irr_percent"], str(name_or_path))
    irr = {row["attribute"]: float(row["human_irr_percent"]) / 100 for row in rows}
    if not all(0 <= value <= 1 for value in irr.values()):
        raise ValueError(f"{name_or_path}: IRR must be a percentage between 0 and 100")
    return irr


def prompts_sha256(pairs: list[PromptPair]) -> str:
    """The prompts as a recipe setting: editing a prompt changes every association computed from it."""
    text = "\n".join(f"{p.attribute}\t{p.positive}\t{p.negative}" for p in pairs)
    return hashlib.sha256(text.encode()).hexdigest()
