"""Gather every CLIP model's stored associations for the cross-model report, refusing any made from other inputs.

A record whose ratings-dataset or prompt hash differs from the current ones describes another experiment; pooling
it would compare models on different data, so it is named (``stale``) rather than used. A model without a record
yet is named in ``missing`` and the report says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from laion_audit.impressions.associations import scores_from_table
from laion_audit.impressions.bias import model_family
from laion_audit.impressions.model_outputs import ModelOutputs
from laion_audit.impressions.ratings import RatingsDataset
from laion_audit.impressions.report import ModelAssociations
from laion_audit.models.registry import ModelEntry


@dataclass
class Collected:
    found: list[ModelAssociations] = field(default_factory=list)
    data_versions: dict[str, str] = field(default_factory=dict)  # role -> the record's data version
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


def collect_associations(outputs: ModelOutputs, entries: Iterable[ModelEntry], dataset: RatingsDataset,
                         prompts_sha256: str) -> Collected:
    collected = Collected()
    for entry in entries:
        record = outputs.record(entry.role)
        if record is None:
            collected.missing.append(entry.role)
            continue
        recipe = record["recipe"]
        if (recipe.get("ratings_sha256"), recipe.get("prompts_sha256")) != (dataset.sha256, prompts_sha256):
            collected.stale.append(entry.role)
            continue
        stimuli, scores = scores_from_table(outputs.read(entry.role, record), dataset.attributes)
        collected.found.append(ModelAssociations(
            entry.role, record["model_name"], model_family(entry.source, entry.random_weights), stimuli, scores,
            {**entry.scale_settings, **record["parameters"]}, record["random_weights"]))
        collected.data_versions[entry.role] = record["data_version"]
    return collected


def write_figures(fs, directory: str, figures: dict[str, bytes]) -> None:
    """Each PNG under ``directory``, atomically (temporary name, then rename)."""
    fs.makedirs(directory, exist_ok=True)
    for name, png in figures.items():
        with fs.open(f"{directory}/.{name}.tmp", "wb") as handle:
            handle.write(png)
        fs.mv(f"{directory}/.{name}.tmp", f"{directory}/{name}")
