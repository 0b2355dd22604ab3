"""What stands behind a report section: shards, code versions, models (name, fingerprint, substitute or not,
random weights), run ids, git commits, and imported annotations — read from the completion markers of the
per-shard assets the section was computed from.

A section's warnings come from here too: results from random-weight tiny models, from imported annotations, or
from a model whose staged weights are no longer the ones that made the results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from laion_audit.models.registry import MissingWeightsError, ModelRegistry
from laion_audit.report.html_page import definition_list, escape
from laion_audit.shards.lineage import PER_SHARD_ASSETS, is_restricted
from laion_audit.shards.store import ShardStore

SHOWN_RUN_IDS = 8


@dataclass
class ModelUse:
    role: str
    fingerprint: str
    name: str
    substitute_for: str | None = None
    random_weights: bool = False
    staged: bool | None = None  # the staged weights still have this fingerprint (None: not a registry model)


@dataclass
class SectionProvenance:
    assets: list[str]
    shards: set[str] = field(default_factory=set)
    code_versions: set[str] = field(default_factory=set)
    run_ids: set[str] = field(default_factory=set)
    git_commits: set[str] = field(default_factory=set)
    models: dict[tuple[str, str], ModelUse] = field(default_factory=dict)
    imported: set[str] = field(default_factory=set)
    report_run_id: str | None = None

    def add_models(self, registry: ModelRegistry | None, fingerprints: Mapping[str, str | None]) -> None:
        """Models named by role outside the shard markers (per-model analyses). Where no record names the
        weights, the staged ones are shown, marked as not recorded (and never called stale)."""
        for role, fingerprint in fingerprints.items():
            recorded = fingerprint is not None
            if not recorded:
                try:
                    fingerprint = registry.resolve(role).fingerprint if registry is not None else "unrecorded"
                except (MissingWeightsError, KeyError):
                    fingerprint = "unrecorded"
            use = _model_use(registry, role, str(fingerprint))
            if not recorded:
                use.staged, use.name = None, f"{use.name} (weights not recorded; staged now shown)"
            self.models.setdefault((role, str(fingerprint)), use)

    def warnings(self) -> list[str]:
        out = []
        random = sorted({use.name for use in self.models.values() if use.random_weights})
        if random:
            out.append("RANDOM WEIGHTS: these results come from random-weight tiny models (" + ", ".join(random)
                       + "); they exercise the pipeline and mean nothing about the data.")
        if self.imported:
            out.append("IMPORTED ANNOTATIONS: part of these results rest on annotations imported from files ("
                       + ", ".join(sorted(self.imported)) + "), not produced by this pipeline's models.")
        replaced = sorted({use.role for use in self.models.values() if use.staged is False})
        if replaced:
            out.append("STALE MODELS: the weights staged now for " + ", ".join(replaced) + " differ from the ones "
                       "that produced these results; re-materialize to audit with the current models.")
        substitutes = sorted({f"{use.name}" for use in self.models.values() if use.substitute_for})
        if substitutes:
            out.append("SUBSTITUTE MODELS: " + "; ".join(substitutes) + ".")
        return out

    def html(self) -> str:
        shards = sorted(self.shards)
        shown = ", ".join(shards[:10]) + (f", … (+{len(shards) - 10} more)" if len(shards) > 10 else "")
        runs = sorted(self.run_ids)
        run_text = ", ".join(f"<code>{escape(r)}</code>" for r in runs[:SHOWN_RUN_IDS])
        if len(runs) > SHOWN_RUN_IDS:
            run_text += f" … (+{len(runs) - SHOWN_RUN_IDS} more)"
        models = "; ".join(
            f"{escape(use.role)}: {escape(use.name)} <code>{escape(use.fingerprint[:16])}</code>"
            + (" (random weights)" if use.random_weights else "")
            + (f" (substitute for {escape(use.substitute_for)})" if use.substitute_for else "")
            for use in sorted(self.models.values(), key=lambda use: (use.role, use.fingerprint))
        ) or "none"
        items = [("Computed from", escape(", ".join(self.assets))),
                 ("Shards", f"{len(shards)}: {escape(shown)}" if shards else "none"),
                 ("Models", models),
                 ("Code versions", escape(", ".join(sorted(self.code_versions))) or "—"),
                 ("Git commits", escape(", ".join(sorted(self.git_commits))) or "—"),
                 ("Shard run ids", run_text or "—")]
        if self.report_run_id:
            items.append(("Report table run id", f"<code>{escape(self.report_run_id)}</code>"))
        return definition_list(items)


def _model_use(registry: ModelRegistry | None, role: str, fingerprint: str) -> ModelUse:
    if registry is not None:
        try:
            entry = registry.entry(role)
        except KeyError:
            entry = None
        if entry is not None:
            try:
                staged = registry.resolve(role).fingerprint == fingerprint
            except MissingWeightsError:
                staged = False
            return ModelUse(role, fingerprint, entry.describe(), entry.substitute_for, entry.random_weights, staged)
    if str(fingerprint).startswith("imported"):
        return ModelUse(role, fingerprint, "imported annotations")
    return ModelUse(role, fingerprint, f"trained {role.replace('_', ' ')}",
                    random_weights=registry is not None and registry.profile == "tiny")


def section_provenance(store: ShardStore, assets: Iterable[str], registry: ModelRegistry | None,
                       manifest: Mapping[str, Mapping[str, Any]] | None = None) -> SectionProvenance:
    """Provenance of a section computed from ``assets``; with ``manifest`` (a table's record of what it read:
    {asset: {shard: {data_version, ...}}}) only the shards and versions the table actually read count."""
    assets = [asset for asset in assets if asset in PER_SHARD_ASSETS]
    provenance = SectionProvenance(assets)
    for asset in assets:
        markers = store.complete_shards(asset, is_restricted(asset))
        read = (manifest or {}).get(asset)
        for shard, marker in markers.items():
            if read is not None and (shard not in read or read[shard].get("data_version") != marker.get("data_version")):
                continue
            provenance.shards.add(shard)
            if marker.get("code_version"):
                provenance.code_versions.add(str(marker["code_version"]))
            if marker.get("run_id"):
                provenance.run_ids.add(str(marker["run_id"]))
            if marker.get("git_commit"):
                provenance.git_commits.add(str(marker["git_commit"])[:12])
            recipe = marker.get("recipe") or {}
            if marker.get("imported_from") or (recipe.get("settings") or {}).get("imported"):
                provenance.imported.add(str(marker.get("imported_from") or asset))
            for role, fingerprint in {**(marker.get("models") or {}), **(recipe.get("models") or {})}.items():
                key = (role, str(fingerprint))
                if key not in provenance.models:
                    provenance.models[key] = _model_use(registry, role, str(fingerprint))
    return provenance
