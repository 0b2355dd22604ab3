"""The audit report: one self-contained HTML file assembled from the dataset-level reports in the store.

Each analysis writes its own report (``<store>/reports/<name>.json`` with the manifest of what it read and the
settings it used, and ``<name>.md`` with its tables and charts). The audit report puts them in one document,
in a fixed order, each section with the shards, models, code versions and run ids behind it (from the
completion markers its manifest names) and a visible warning when its results come from random-weight models
or imported annotations. An analysis that has not been materialized gets a section that says so, so a reader
never mistakes a missing analysis for an empty result.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from laion_audit.models.registry import ModelRegistry
from laion_audit.report.composition import Composition, dataset_composition
from laion_audit.report.html_page import Section, box, definition_list, escape, markdown, page, table
from laion_audit.report.methods import methods_html
from laion_audit.report.provenance import SectionProvenance, section_provenance
from laion_audit.shards.lineage import PER_SHARD_ASSETS
from laion_audit.shards.store import ShardStore

REPORT_FILE = "audit_report.html"


@dataclass(frozen=True)
class Analysis:
    """A dataset-level report the audit report includes: its report name in the store, a title, what it shows,
    and the per-shard assets its results come from (used when its JSON has no manifest of its own)."""

    name: str
    title: str
    about: str
    inputs: tuple[str, ...] = ()


ANALYSES = (
    Analysis("crime_cooccurrence", "Crime-word co-occurrence by perceived group",
             "Rate of crime words in alt-texts of samples attributed to each perceived group against all samples "
             "with a valid person, Δ with 95% CIs, and the per-word breakdown.",
             ("group_counts", "gender_labels", "race_labels", "alt_text_scores")),
    Analysis("sentiment_by_group", "Alt-text sentiment by perceived group",
             "Share of VADER-negative alt-texts and mean compound score per perceived group, with 95% CIs.",
             ("group_counts", "gender_labels", "race_labels", "alt_text_scores")),
    Analysis("keyword_audit", "Alt-text keyword audit (Birhane et al. 2021, Table 1)",
             "Matches per search string and NSFW keyword hits in TEXT and URL, in substring and word-boundary "
             "modes, for the NSFW list as printed and uncensored.", ("keyword_counts", "samples")),
    Analysis("word_gender_cooccurrence", "Social-category words by perceived gender",
             "Dataset bias of each social-category word: (n_f − n_m)/(n_f + n_m) over alt-texts of samples "
             "attributed female and male."),
    Analysis("bias_transfer_regression", "Bias transfer from data to models",
             "Model bias (CLIP, Stable Diffusion) regressed on dataset bias per word list and image set."),
    Analysis("identity_topic_pmi", "Identity–topic PMI from sparse autoencoders",
             "Topics most associated with each intersectional perceived identity in person captions."),
    Analysis("facial_impression_bias", "Facial impression bias (CLIP against human ratings)",
             "Agreement of CLIP's facial impressions with human ratings per attribute and model."),
    Analysis("clip_threshold_audit", "The CLIP 0.3 similarity threshold",
             "Image–alt-text similarity on each side of LAION's 0.3 filter per CLIP model, and counterfactual "
             "probes."),
)


def read_report(store: ShardStore, name: str) -> tuple[dict[str, Any] | None, str | None]:
    """(JSON payload, markdown) of a dataset report, None where the file does not exist."""
    payload = text = None
    base = f"{store.reports_dir}/{name}"
    if store.fs.exists(f"{base}.json"):
        with store.fs.open(f"{base}.json", "r") as handle:
            payload = json.load(handle)
    if store.fs.exists(f"{base}.md"):
        with store.fs.open(f"{base}.md", "r") as handle:
            text = handle.read()
    return payload, text


IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def inline_images(store: ShardStore, text: str) -> str:
    """The report's markdown with every image it links to by a path relative to the reports folder embedded as a
    PNG data URI (the HTML must load nothing); a link that does not resolve to a PNG there becomes plain text."""

    def embed(match: re.Match) -> str:
        alt, target = match.group(1), match.group(2)
        if target.startswith("data:"):
            return match.group(0)
        path = f"{store.reports_dir}/{target}"
        if "://" not in target and ".." not in target.split("/") and store.fs.exists(path):
            with store.fs.open(path, "rb") as handle:
                data = handle.read()
            if data[:8] == b"\x89PNG\r\n\x1a\n":
                return f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode('ascii')})"
        return f"({alt}: figure {target} not found)"

    return IMAGE_LINK.sub(embed, text)


def _composition_section(store: ShardStore, composition: Composition, registry: ModelRegistry | None,
                         k_min: int) -> Section:
    errors = [{"error kind": kind, "samples": count} for kind, count in sorted(composition.error_kinds.items())]
    body = [definition_list([
        ("Shards ingested", f"{len(composition.shards):,}"),
        ("Samples", f"{composition.samples:,}"),
        ("Samples with an error", f"{composition.sample_errors:,}"),
        ("Shards with person boxes", f"{composition.box_shards:,}"),
        ("Person boxes", f"{composition.persons:,}"),
        ("Valid persons (boxes large enough to label)", f"{composition.valid_persons:,}"),
    ])]
    body.append("<h3>Errors by kind</h3>" + (table(errors) if errors else "<p>No sample errors.</p>"))
    for axis, rows in composition.labels.items():
        body.append(f"<h3>Perceived {escape(axis)} of labelled persons</h3>")
        if not rows:
            body.append(box("missing", f"No {axis} labels yet ({composition.labelled_shards.get(axis, 0)} shards)."))
            continue
        body.append(table([{"perceived group": label, "persons": count if count is not None else f"< {k_min} "
                            "or hidden as its complement"} for label, count in rows], ["perceived group", "persons"]))
    provenance = section_provenance(store, ("samples", "person_boxes", "gender_labels", "race_labels"), registry)
    return Section("composition", "Dataset composition", "".join(body), provenance.warnings(), provenance.html())


def _manifest(payload: Mapping[str, Any]) -> dict[str, Any]:
    """{per-shard asset: {shard: entry}} for every manifest a report recorded, wherever it nests it ("inputs",
    "inputs.dataset", per version set); keys that are not per-shard assets (models, lists) are not manifests."""
    found: dict[str, Any] = {}

    def walk(value: Any) -> None:
        if not isinstance(value, Mapping):
            return
        for key, item in value.items():
            if key in PER_SHARD_ASSETS and isinstance(item, Mapping):
                found.setdefault(key, {}).update(item)
            elif isinstance(item, Mapping):
                walk(item)

    walk(payload.get("inputs"))
    for group in (payload.get("by_version_set") or {}).values():
        walk((group or {}).get("inputs") if isinstance(group, Mapping) else None)
    return found


def _input_assets(payload: Mapping[str, Any]) -> list[str]:
    """Per-shard assets a report names as a plain list of inputs (per version set)."""
    names = []
    for group in [payload, *(payload.get("by_version_set") or {}).values()]:
        inputs = group.get("inputs") if isinstance(group, Mapping) else None
        if isinstance(inputs, list):
            names += [name for name in inputs if name in PER_SHARD_ASSETS]
    return names


def _per_model_fingerprints(store: ShardStore, payload: Mapping[str, Any]) -> dict[str, str | None]:
    """{role: fingerprint} of the CLIP and Stable Diffusion models behind a per-model analysis, from the per-model
    records those analyses write (None where no record names the weights)."""
    roles: dict[str, str | None] = {}
    for model in payload.get("models") or []:
        if isinstance(model, Mapping) and model.get("role"):
            record = _read_json(store, f"{store.root}/facial_impression_associations/{model['role']}.json")
            roles[model["role"]] = ((record or {}).get("recipe") or {}).get("model_fingerprint")
    inputs = payload.get("inputs") if isinstance(payload.get("inputs"), Mapping) else {}
    for family, asset in (("clip", "clip_model_bias"), ("sd", "sd_model_bias")):
        for role in inputs.get(family) or {}:
            record = _read_json(store, f"{store.reports_dir}/{asset}.{role}.json") or {}
            recipe = record.get("recipe") or {}
            roles[role] = recipe.get("model") or (recipe.get("models") or {}).get(role)
    return roles


def _read_json(store: ShardStore, path: str) -> dict[str, Any] | None:
    if not store.fs.exists(path):
        return None
    with store.fs.open(path, "r") as handle:
        return json.load(handle)


def _analysis_section(store: ShardStore, analysis: Analysis, registry: ModelRegistry | None,
                      run_id: str | None) -> Section:
    payload, text = read_report(store, analysis.name)
    if payload is None and text is None:
        return Section(analysis.name, analysis.title,
                       f"<p>{escape(analysis.about)}</p>" + box(
                           "missing", f"Not materialized: the {analysis.name} asset has no report in this store yet."))
    manifest = _manifest(payload or {})
    assets = list(dict.fromkeys([*manifest, *_input_assets(payload or {}), *analysis.inputs]))
    provenance: SectionProvenance = section_provenance(store, assets, registry, manifest or None)
    provenance.add_models(registry, _per_model_fingerprints(store, payload or {}))
    provenance.report_run_id = run_id
    body = f"<p>{escape(analysis.about)}</p>" + (markdown(inline_images(store, text)) if text else "")
    if analysis.name == "crime_cooccurrence" and payload:
        body += _per_word(payload)
    return Section(analysis.name, analysis.title, body, provenance.warnings(), provenance.html())


def _per_word(payload: Mapping[str, Any]) -> str:
    """The per-word breakdown of the crime table (published rows: small cells already withheld)."""
    groups = payload.get("by_version_set") or {None: payload}
    parts = []
    for label, group in groups.items():
        words = [row for row in group.get("per_word") or [] if row.get("group") != "baseline"]
        if not words:
            continue
        heading = "Per-word breakdown" + (f" (version set {label})" if label else "")
        columns = [c for c in ("group", "word", "n_samples", "hits", "rate", "baseline_rate", "delta_pct",
                               "precision", "suppressed") if c in words[0]]
        parts.append(f"<h3>{escape(heading)}</h3>" + table(words, columns))
    return "".join(parts)


def _crime_precision(payload: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for group in ((payload or {}).get("by_version_set") or {None: payload or {}}).values():
        for row in group.get("per_word") or []:
            if row.get("group") == "baseline" and row.get("reviewed"):
                rows.append({"word": row.get("word"), "reviewed matches": row.get("reviewed"),
                             "precision": row.get("precision")})
    return rows


def build_audit_report(store: ShardStore, registry: ModelRegistry | None, *, k_min: int = 10,
                       run_ids: Mapping[str, str] | None = None, title: str = "LAION audit report"
                       ) -> tuple[str, dict[str, Any]]:
    """(HTML, summary): the summary lists the sections, which analyses are missing, and the warnings shown."""
    composition = dataset_composition(store, k_min)
    sections = [_composition_section(store, composition, registry, k_min)]
    table_settings, missing = {}, []
    for analysis in ANALYSES:
        section = _analysis_section(store, analysis, registry, (run_ids or {}).get(analysis.name))
        sections.append(section)
        payload, _ = read_report(store, analysis.name)
        if payload is None:
            missing.append(analysis.name)
        elif isinstance(payload.get("settings"), Mapping):
            table_settings[analysis.name] = payload["settings"]
    crime, _ = read_report(store, "crime_cooccurrence")
    sections.append(Section("methods", "Methods and limitations", methods_html(store, table_settings,
                                                                                _crime_precision(crime))))
    banner = []
    if registry is not None and registry.profile == "tiny":
        banner.append("This report was produced with the tiny model profile: every model is a random-weight "
                      "stand-in built offline, so no figure here says anything about the dataset. Use the paper "
                      "profile for an audit.")
    subtitle = (f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from the store {store.root}; "
                f"{len(composition.shards):,} shards; model profile "
                f"{registry.profile if registry is not None else 'unknown'}; small cells (< {k_min}) suppressed.")
    html = page(title, subtitle, sections, banner)
    # The data version: the sections' content, not the generation time in the subtitle.
    content = hashlib.sha256("".join([*banner, *(s.render() for s in sections)]).encode()).hexdigest()
    summary = {"sections": [s.id for s in sections], "missing": missing, "content_sha256": content,
               "warnings": sorted({w for s in sections for w in s.warnings} | set(banner)),
               "shards": len(composition.shards)}
    return html, summary


def write_audit_report(store: ShardStore, html: str) -> str:
    """Write <store>/reports/audit_report.html atomically; return its path."""
    store.fs.makedirs(store.reports_dir, exist_ok=True)
    path = f"{store.reports_dir}/{REPORT_FILE}"
    tmp = f"{path}.tmp"
    with store.fs.open(tmp, "w") as handle:
        handle.write(html)
    store.fs.mv(tmp, path)
    return path


def latest_report_path(store: ShardStore) -> str | None:
    """The audit report's path in ``store`` (written in place, so the file there is always the latest)."""
    path = f"{store.reports_dir}/{REPORT_FILE}"
    return path if store.fs.exists(path) else None
