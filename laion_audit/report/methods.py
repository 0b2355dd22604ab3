"""The report's methods and limitations, written from the configuration the results were actually made with.

Every number here is read from a recipe the shards recorded (detector thresholds, vote sampling and consensus
rule, abstain threshold, word lists by name, hash and size, VADER thresholds, crime exclusions and review) or
from the settings a dataset table recorded (attribution rule, k, the Δ interval); nothing is restated from
defaults, so the text cannot drift from what ran. Word lists shipped with the project get their provenance from
lexical_data/README.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from laion_audit.report.html_page import escape, table
from laion_audit.shards.lineage import is_restricted
from laion_audit.shards.store import ShardStore

RECIPE_ASSETS = ("person_boxes", "gender_votes", "race_votes", "gender_labels", "race_labels", "alt_text_scores",
                 "keyword_counts")
CAVEATS = [
    ("Perceived, not actual, attributes",
     "Gender and race/ethnicity labels are what classifiers trained on MLLM-ensemble consensus perceive in a "
     "person crop. They say nothing about how the people shown identify; treat every group figure as a statement "
     "about appearance-based perception in the dataset and the models."),
    ("Binary perceived gender",
     "The gender classifier has two classes (female, male) plus abstention; people who are neither or whose "
     "gender is not perceivable are either abstained on or forced into a binary label."),
    ("Perceived race/ethnicity categories",
     "Seven categories (White, Black, East Asian, Southeast Asian, South Asian, Middle Eastern, Latino) follow "
     "Girrbach et al.; such categories are social constructs, vary across cultures, and are inferred from "
     "appearance only."),
    ("Label noise",
     "Classifier labels carry errors that differ by group; consensus training reduces but does not remove them, "
     "and rare groups are the least reliable. Small cells are suppressed, but larger cells still include noise."),
    ("Substring inflation",
     "Substring matching counts a keyword inside longer words (\"sex\" in \"Essex\", \"nun\" in \"nunchucks\"), so "
     "substring counts overstate topical matches; the keyword audit reports word-boundary counts beside them."),
    ("Attribution of alt-text to persons",
     "An alt-text describes an image, not one person in it: under the sample rule a caption counts once for every "
     "perceived group present in the image, so groups overlap and are not independent."),
]


@cache
def shipped_list_provenance() -> dict[str, str]:
    """{list name: the 'content, sources and inclusion rule' cell of lexical_data/README.md}."""
    try:
        text = resources.files("laion_audit.lexical_data").joinpath("README.md").read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError):
        return {}
    out = {}
    for line in text.splitlines():
        match = re.match(r"\|\s*`([^`]+)`\s*\|\s*([^|]+)\|\s*(.+?)\s*\|", line)
        if match:
            name = match.group(1).rsplit(".", 1)[0]
            out[name] = f"{match.group(2).strip()}: {match.group(3).strip()}"
    return out


def recipe_settings(store: ShardStore, asset: str) -> list[dict[str, Any]]:
    """The distinct recipe settings of an asset's complete shards (one per version set, usually one)."""
    seen: dict[str, dict[str, Any]] = {}
    for marker in store.complete_shards(asset, is_restricted(asset)).values():
        settings = (marker.get("recipe") or {}).get("settings") or {}
        seen.setdefault(str(marker.get("version_set")), settings)
    return list(seen.values())


def _word_lists(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every {name, sha256, terms} record found in a settings dict (word lists are recorded that way)."""
    found = []
    for key, value in settings.items():
        if isinstance(value, Mapping) and {"name", "sha256", "terms"} <= set(value):
            found.append({"setting": key, **value})
        elif isinstance(value, Mapping):
            found.extend(_word_lists(value))
    return found


def _plain(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"setting": key, "value": value} for key, value in sorted(settings.items())
            if isinstance(value, str | int | float | bool) or value is None]


def methods_html(store: ShardStore, table_settings: Mapping[str, Mapping[str, Any]],
                 crime_precision: list[dict[str, Any]] | None = None) -> str:
    """Settings of every per-shard step and dataset table, the word lists, and the caveats of perceived labels."""
    parts = ["<h3>Settings the per-shard results were made with</h3>"]
    lists: dict[tuple[str, str], dict[str, Any]] = {}
    for asset in RECIPE_ASSETS:
        versions = recipe_settings(store, asset)
        if not versions:
            parts.append(f"<p><strong>{escape(asset)}</strong>: not materialized.</p>")
            continue
        for i, settings in enumerate(versions):
            label = asset if len(versions) == 1 else f"{asset} (version set {i + 1} of {len(versions)})"
            parts.append(table(_plain(settings), ["setting", "value"], caption=label))
            for record in _word_lists(settings):
                lists[(record["name"], record["sha256"])] = record
    parts.append("<h3>Settings of the dataset tables</h3>")
    for name, settings in table_settings.items():
        parts.append(table(_plain(settings), ["setting", "value"], caption=name))
        for record in _word_lists(settings):
            lists[(record["name"], record["sha256"])] = record
    parts.append("<h3>Word lists</h3>")
    shipped = shipped_list_provenance()
    items = []
    for record in sorted(lists.values(), key=lambda r: (r["name"], r["setting"])):
        origin = shipped.get(record["name"], "a file the user supplied (its path is recorded in the recipe)")
        items.append(f"<li><strong>{escape(record['name'])}</strong> (used as {escape(record['setting'])}; "
                     f"{int(record['terms']):,} terms; sha256 <code>{escape(str(record['sha256'])[:16])}</code>): "
                     f"{escape(origin)}</li>")
    parts.append(f"<ul>{''.join(items)}</ul>" if items else "<p>No word lists recorded.</p>")
    if crime_precision:
        parts.append("<h3>Measured precision of the crime words</h3><p>From the crime-word review the scores were "
                     "filtered with (share of reviewed matches that are about crime).</p>")
        parts.append(table(crime_precision))
    else:
        parts.append("<p>No crime-word review was applied: crime-word precision is unmeasured for these results "
                     "(run <code>laion-audit crime-review sample</code>, fill it in, and set "
                     "<code>crime_review</code>).</p>")
    parts.append("<h3>Limitations</h3>")
    parts.append("".join(f"<p><strong>{escape(title)}.</strong> {escape(text)}</p>" for title, text in CAVEATS))
    return "".join(parts)
