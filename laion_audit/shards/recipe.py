"""The recipe of a per-shard output: everything that made it, so "complete" means "complete for this recipe".

A shard file is only as trustworthy as the test that decides whether it must be recomputed. Code and model
versions alone are not enough: a run with another threshold, another word list or re-ingested upstream data
produces a different table, so the recipe holds

* ``code_version`` — the asset's logic version (bumped by hand when its output would change);
* ``models`` — role -> weights fingerprint of every model the output used;
* ``settings`` — every effective setting that can change the rows (word lists by content hash, seeds, rules);
* ``upstream`` — the data version of every upstream partition (or source file) it read.

The marker stores the parts and their hash; a re-run skips a shard only when the hash is identical. The
partition's data version is derived from the recipe hash and the output's bytes, so it changes whenever either
does, and downstream recipes, which name it, change with it.

Execution-only knobs (batch size, processes, force) are not settings here: they must not change the rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


# The settings key of a recipe that imported its rows from a file instead of computing them (annotation/imports.py).
IMPORTED_SETTING = "imported"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Recipe:
    asset: str
    code_version: str
    models: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    upstream: Mapping[str, str] = field(default_factory=dict)

    def parts(self) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "code_version": self.code_version,
            "models": dict(self.models),
            "settings": dict(self.settings),
            "upstream": dict(self.upstream),
        }

    @property
    def sha256(self) -> str:
        return sha256_text(canonical_json(self.parts()))

    @property
    def version_set(self) -> str:
        """What makes two shards' outputs comparable: code, models and settings, not the upstream data.

        Dataset tables combine shards only when each input has one version set (see audits/report_inputs).
        """
        return sha256_text(canonical_json({k: v for k, v in self.parts().items() if k != "upstream"}))[:16]

    @property
    def imported(self) -> bool:
        """Rows read from a user's file (no model ran): ``settings["imported"]`` names the file and its sha256."""
        return IMPORTED_SETTING in self.settings

    @classmethod
    def from_marker(cls, marker: Mapping[str, Any]) -> Recipe | None:
        parts = marker.get("recipe")
        if not parts:
            return None
        return cls(parts["asset"], parts["code_version"], parts.get("models", {}), parts.get("settings", {}),
                   parts.get("upstream", {}))


def output_data_version(recipe_sha256: str, data_sha256: str) -> str:
    """The partition's data version: changes when the recipe or the bytes of the output change."""
    return sha256_text(f"{recipe_sha256}:{data_sha256}")[:24]


def word_list_setting(name_or_path: str, terms: list[str]) -> dict[str, Any]:
    """A word list as a recipe setting: its name and the hash of its normalised contents.

    Editing a list file in place (same path, new words) must change the recipe; renaming an unchanged list
    need not, but the name is kept so a marker says which list was meant.
    """
    return {"name": str(name_or_path), "terms": len(terms), "sha256": sha256_text("\n".join(terms))}
