"""The facial impression bias report: every model's associations against the human ratings, as one payload
(JSON-able), a markdown report and its figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from laion_audit.impressions import plots
from laion_audit.impressions.bias import (
    correlation_matrix,
    family_irr_correlation,
    model_human_similarity,
    normalized_frobenius,
    scale_regression,
    ward_clustering,
)
from laion_audit.impressions.ratings import RatingsDataset


@dataclass
class ModelAssociations:
    role: str
    name: str
    family: str
    stimuli: list[str]
    scores: np.ndarray  # (len(stimuli), attributes), the dataset's attribute order
    scale: dict[str, float] = field(default_factory=dict)  # data_millions, samples_seen_millions, *_mparams
    random_weights: bool = False


def _finite(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def impression_bias(dataset: RatingsDataset, models: Sequence[ModelAssociations],
                    irr: Mapping[str, float]) -> dict[str, Any]:
    """Similarity per model and attribute, IRR correlation per family, the scale regression and the structure."""
    attributes = dataset.attributes
    missing_irr = [a for a in attributes if a not in irr]
    if missing_irr:
        raise ValueError(f"no human IRR for attributes: {', '.join(missing_irr)}")
    row_of = {s: i for i, s in enumerate(dataset.stimuli)}
    human_matrix = correlation_matrix(dataset.means)
    similarity: dict[str, dict[str, float]] = {}
    per_attribute, regression_rows, structure = [], [], {}
    for model in models:
        common = [i for i, s in enumerate(model.stimuli) if s in row_of]
        human = dataset.means[[row_of[model.stimuli[i]] for i in common]]
        scores = model.scores[common]
        rows = model_human_similarity(scores, human, attributes)
        similarity[model.role] = {row["attribute"]: row["rho"] for row in rows}
        for row in rows:
            per_attribute.append({"model": model.role, "family": model.family, "images": len(common), **row,
                                  "rho": _finite(row["rho"]), "p_value": _finite(row["p_value"])})
            regression_rows.append({"similarity": row["rho"], "irr": irr[row["attribute"]], **model.scale})
        matrix = correlation_matrix(scores)
        structure[model.role] = {"frobenius_with_human": _finite(normalized_frobenius(human_matrix, matrix)),
                                 "ward": ward_clustering(matrix, attributes),
                                 "matrix": np.where(np.isfinite(matrix), matrix, None).tolist()}
    families = {model.role: model.family for model in models}
    family_means = {family: {a: _finite(_mean([similarity[r][a] for r in families if families[r] == family]))
                             for a in attributes} for family in sorted(set(families.values()))}
    return {
        "attributes": attributes,
        "models": [{"role": m.role, "name": m.name, "family": m.family, "random_weights": m.random_weights,
                    "scale": m.scale, "images": len(m.stimuli)} for m in models],
        "similarity": per_attribute,
        "significant_attributes": {role: sum(1 for row in per_attribute if row["model"] == role and row["significant"])
                                   for role in similarity},
        "irr_correlation": family_irr_correlation(similarity, families, irr),
        "family_mean_similarity": family_means,
        "regression": scale_regression(regression_rows),
        "human_structure": {"ward": ward_clustering(human_matrix, attributes),
                            "matrix": np.where(np.isfinite(human_matrix), human_matrix, None).tolist()},
        "model_structure": structure,
        "irr": dict(irr),
        "dataset": {"folder": str(dataset.folder), "sha256": dataset.sha256, **dataset.problems_summary()},
    }


def _number(value: Any, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def render(result: Mapping[str, Any], link_prefix: str = "") -> tuple[str, dict[str, bytes]]:
    """(markdown, {file name: PNG}) of ``impression_bias``'s result; the markdown links each PNG as
    ``link_prefix + file name``."""
    attributes = result["attributes"]
    similarity: dict[str, dict[str, float]] = {}
    for row in result["similarity"]:
        similarity.setdefault(row["model"], {})[row["attribute"]] = row["rho"] if row["rho"] is not None else np.nan
    figures = {"similarity.png": plots.similarity_heatmap(similarity, attributes),
               "irr.png": plots.irr_scatter(result["family_mean_similarity"], result["irr"])}
    human = result["human_structure"]["ward"]
    figures["dendrogram_human.png"] = plots.dendrogram(human["linkage"], human["labels"], "Human ratings (Ward)")
    for role, structure in result["model_structure"].items():
        ward = structure["ward"]
        figures[f"dendrogram_{role}.png"] = plots.dendrogram(ward["linkage"], ward["labels"], f"{role} (Ward)")
    dataset = result["dataset"]
    lines = ["# Facial impression bias (Wolfe et al. 2024 method)", "",
             f"Ratings: {dataset['folder']} (sha256 {dataset['sha256'][:16]}), {dataset['stimuli_analysed']} stimuli "
             f"analysed, {dataset['stimuli_without_image']} rated stimuli without image, "
             f"{dataset['images_without_rating']} images without rating.", ""]
    if any(m["random_weights"] for m in result["models"]):
        lines += ["**Random-weight models**: these numbers exercise the pipeline; they say nothing about CLIP.", ""]
    lines += ["## Models", "", "| model | family | images | significant attributes (ρ>0, p<.05) | "
              "normalized Frobenius ⟨H,M⟩ |", "|---|---|---|---|---|"]
    for model in result["models"]:
        frob = result["model_structure"][model["role"]]["frobenius_with_human"]
        lines.append(f"| {model['role']} | {model['family']} | {model['images']} | "
                     f"{result['significant_attributes'][model['role']]}/{len(attributes)} | {_number(frob)} |")
    lines += ["", "## IRR and model–human similarity, per family (Spearman over attributes)", "",
              "| family | models | attributes | ρ | p |", "|---|---|---|---|---|"]
    for row in result["irr_correlation"]:
        lines.append(f"| {row['family']} | {len(row['models'])} | {row['attributes']} | {_number(row['rho'])} | "
                     f"{_number(row['p_value'], 4)} |")
    regression = result["regression"]
    lines += ["", "## OLS: similarity ~ IRR + scale", ""]
    if "coefficients" in regression:
        lines += [f"n = {regression['n']}, residual df = {regression['df_resid']:.0f}, R² = "
                  f"{regression['r_squared']:.3f}; {regression['scaling']}.", "",
                  "| variable | coef | t | p |", "|---|---|---|---|"]
        lines += [f"| {name} | {_number(c['coef'])} | {_number(c['t'], 2)} | {_number(c['p_value'], 4)} |"
                  for name, c in regression["coefficients"].items()]
    else:
        lines.append(f"Not fitted: {regression.get('error')} (n = {regression['n']}).")
    if regression.get("dropped"):
        lines.append("")
        lines.append("Left out: " + "; ".join(f"{k} ({v})" for k, v in regression["dropped"].items()) + ".")
    lines += ["", "## Similarity per model and attribute", "", f"![similarity]({link_prefix}similarity.png)", "",
              f"![IRR]({link_prefix}irr.png)", "", "## Structure: Ward clustering of the correlation matrices", "",
              "Both dendrograms cluster the rows of the correlation matrix itself (Wolfe et al. cluster the human "
              "matrix's correlation of correlations).", "", f"![human]({link_prefix}dendrogram_human.png)"]
    lines += [f"![{role}]({link_prefix}dendrogram_{role}.png)" for role in result["model_structure"]]
    lines += ["", "| model | attribute | ρ | p | significant |", "|---|---|---|---|---|"]
    lines += [f"| {row['model']} | {row['attribute']} | {_number(row['rho'])} | {_number(row['p_value'], 4)} | "
              f"{'yes' if row['significant'] else ''} |" for row in result["similarity"]]
    return "\n".join(lines) + "\n", figures
