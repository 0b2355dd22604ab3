"""Word lists and published per-model results of the bias-transfer analyses (Dagster-free).

Word lists: the project's authored list by name (default ``gender_bias_categories``), plus So-B-IT (the union of
its categories, as the paper uses it) and Guilbeault et al.'s categories when the user gives their own copies'
paths. Each list is recorded by name and content hash in every recipe.

Per-model results (one CLIP or SD model each) are JSON files under ``<store>/reports/`` named
``<asset>.<role>.json`` with a markdown twin, written atomically; the regression reads them back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from laion_audit.audits.report_inputs import write_report
from laion_audit.audits.word_lists import load_guilbeault_categories, load_sobit_taxonomy, load_word_list
from laion_audit.shards.recipe import canonical_json, sha256_text, word_list_setting
from laion_audit.shards.store import ShardStore

DEFAULT_LIST = "gender_bias_categories"
SOBIT = "sobit"
GUILBEAULT = "guilbeault"


def transfer_word_lists(authored: Mapping[str, str] | None = None, sobit_path: str | None = None,
                        guilbeault_path: str | None = None) -> dict[str, list[str]]:
    """{list name: words}. ``authored``: {name: shipped list name or path}."""
    lists = {name: load_word_list(source) for name, source in (authored or {DEFAULT_LIST: DEFAULT_LIST}).items()}
    if sobit_path:
        taxonomy = load_sobit_taxonomy(sobit_path)
        lists[SOBIT] = list(dict.fromkeys(word for words in taxonomy.values() for word in words))
    if guilbeault_path:
        lists[GUILBEAULT] = load_guilbeault_categories(guilbeault_path)
    empty = [name for name, words in lists.items() if not words]
    if empty:
        raise ValueError(f"word lists with no words: {', '.join(empty)}")
    return lists


def word_lists_setting(lists: Mapping[str, list[str]]) -> dict[str, Any]:
    """How a recipe records the lists: name and content hash of each."""
    return {name: word_list_setting(name, words) for name, words in sorted(lists.items())}


def recipe_sha256(recipe: Mapping[str, Any]) -> str:
    return sha256_text(canonical_json(recipe))


def model_report_name(asset: str, role: str) -> str:
    return f"{asset}.{role}"


def read_model_report(store: ShardStore, asset: str, role: str) -> dict[str, Any] | None:
    path = f"{store.reports_dir}/{model_report_name(asset, role)}.json"
    if not store.fs.exists(path):
        return None
    with store.fs.open(path, "r") as handle:
        return json.load(handle)


def read_report(store: ShardStore, name: str) -> dict[str, Any] | None:
    path = f"{store.reports_dir}/{name}.json"
    if not store.fs.exists(path):
        return None
    with store.fs.open(path, "r") as handle:
        return json.load(handle)


def write_model_report(store: ShardStore, asset: str, role: str, payload: dict[str, Any], markdown: str) -> str:
    return write_report(store, model_report_name(asset, role), payload, markdown)[0]
