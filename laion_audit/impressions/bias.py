"""How each CLIP model's facial impressions relate to human ones (Wolfe et al. 2024, spec §8).

* model–human similarity s_m^a: Spearman ρ over images between the human mean rating h_a and the association
  m_a; "significant" iff p < .05 and ρ > 0 (utils.py:32-53);
* per model family, Spearman over attributes between the family's mean s and the human IRR;
* OLS of s on IRR and the model's scale (unique data, samples seen, image and text parameters), each non-[0,1]
  variable divided by its column maximum, with a constant (regression_scale_analysis.ipynb:218,241); variables
  that do not vary across the models given are left out and named;
* structure: 34×34 Pearson matrices of the human means and of the associations, their normalized Frobenius
  inner product Σ H∘M / (‖H‖_F ‖M‖_F), and Ward-linkage clustering of each matrix's rows.

Deviation, stated: Wolfe et al. cluster the human matrix's correlation-of-correlations (structure_analysis:263)
but the model matrix itself (271); here both use the matrix itself, so the two dendrograms are comparable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SIGNIFICANCE = 0.05
SCALE_VARIABLES = ("data_millions", "samples_seen_millions", "image_mparams", "text_mparams")


def model_family(source: str, random_weights: bool) -> str:
    """The family an IRR correlation pools: `openai` (OpenAI's checkpoints), `laion400m` (open_clip checkpoints
    trained on LAION-400M), `tiny` (random-weight test models, one family), else the pretrained tag."""
    if random_weights:
        return "tiny"
    tag = source.rpartition("/")[2]
    if tag == "openai":
        return "openai"
    return "laion400m" if tag.startswith("laion400m") else tag


def model_human_similarity(model: np.ndarray, human: np.ndarray, attributes: Sequence[str]) -> list[dict[str, Any]]:
    """Per attribute: Spearman ρ between the columns of ``model`` and ``human`` (rows are the same images)."""
    from scipy.stats import spearmanr

    rows = []
    for index, attribute in enumerate(attributes):
        rho, p = spearmanr(model[:, index], human[:, index])
        rho, p = float(rho), float(p)
        rows.append({"attribute": attribute, "rho": rho, "p_value": p,
                     "significant": bool(np.isfinite(rho) and rho > 0 and p < SIGNIFICANCE)})
    return rows


def family_irr_correlation(similarity: Mapping[str, Mapping[str, float]], families: Mapping[str, str],
                           irr: Mapping[str, float]) -> list[dict[str, Any]]:
    """Per family: Spearman over attributes between the mean ρ of its models and the human IRR."""
    from scipy.stats import spearmanr

    rows = []
    for family in sorted(set(families.values())):
        members = sorted(role for role, f in families.items() if f == family and role in similarity)
        attributes = [a for a in irr if all(np.isfinite(similarity[r].get(a, np.nan)) for r in members)]
        mean = [float(np.mean([similarity[r][a] for r in members])) for a in attributes]
        rho, p = spearmanr(mean, [irr[a] for a in attributes]) if len(attributes) > 2 else (np.nan, np.nan)
        rows.append({"family": family, "models": members, "attributes": len(attributes), "rho": float(rho),
                     "p_value": float(p)})
    return rows


def scale_regression(rows: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """OLS of ``similarity`` on ``irr`` and the scale variables present in every row (statsmodels, constant)."""
    import statsmodels.api as sm

    frame = {name: np.asarray([row.get(name, np.nan) for row in rows], dtype=np.float64)
             for name in ("similarity", "irr", *SCALE_VARIABLES)}
    keep = np.isfinite(frame["similarity"]) & np.isfinite(frame["irr"])
    used, dropped = ["irr"], {}
    for name in SCALE_VARIABLES:
        column = frame[name][keep]
        if not np.isfinite(column).all():
            dropped[name] = "not known for every model"
        elif np.ptp(column) == 0:
            dropped[name] = "the same for every model"
        else:
            used.append(name)
    n = int(keep.sum())
    design = np.ones((n, 1))
    for name in list(used):
        column = frame[name][keep] / (1.0 if name == "irr" else np.max(np.abs(frame[name][keep])))
        candidate = np.column_stack([design, column])
        if np.linalg.matrix_rank(candidate) < candidate.shape[1]:
            used.remove(name)
            dropped[name] = "collinear with the variables before it (too few distinct models)"
        else:
            design = candidate
    design = design[:, 1:]
    if n <= design.shape[1] + 1:
        return {"n": n, "variables": used, "dropped": dropped, "error": "too few rows for the regression"}
    fit = sm.OLS(frame["similarity"][keep], sm.add_constant(design, has_constant="add")).fit()
    names = ["const", *used]
    return {"n": n, "df_resid": float(fit.df_resid), "r_squared": float(fit.rsquared), "variables": used,
            "dropped": dropped, "scaling": "non-[0,1] variables divided by their column maximum",
            "coefficients": {name: {"coef": float(fit.params[i]), "t": float(fit.tvalues[i]),
                                    "p_value": float(fit.pvalues[i])} for i, name in enumerate(names)}}


def correlation_matrix(values: np.ndarray) -> np.ndarray:
    """Pearson correlations between columns; a column that does not vary gets NaN rows and columns."""
    values = np.asarray(values, dtype=np.float64)
    centred = values - values.mean(axis=0)
    norms = np.sqrt((centred ** 2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = (centred.T @ centred) / np.outer(norms, norms)
    matrix[norms == 0, :] = np.nan
    matrix[:, norms == 0] = np.nan
    return np.clip(matrix, -1.0, 1.0)


def normalized_frobenius(a: np.ndarray, b: np.ndarray) -> float:
    """⟨A,B⟩_F / (‖A‖_F ‖B‖_F) over the entries finite in both (a constant column has none)."""
    finite = np.isfinite(a) & np.isfinite(b)
    x, y = a[finite], b[finite]
    denominator = np.sqrt((x ** 2).sum() * (y ** 2).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else float("nan")


def ward_clustering(matrix: np.ndarray, labels: Sequence[str], clusters: int = 4) -> dict[str, Any]:
    """Ward linkage of the matrix's rows (scipy), its leaf order and a cut into ``clusters`` groups.

    Rows and columns of a constant attribute (NaN) are left out and named.
    """
    from scipy.cluster.hierarchy import fcluster, leaves_list, linkage

    usable = [i for i in range(len(labels)) if np.isfinite(matrix[i]).sum() > 1 and np.isfinite(matrix[i, i])]
    sub = matrix[np.ix_(usable, usable)]
    names = [labels[i] for i in usable]
    if len(usable) < 2:
        return {"labels": names, "linkage": [], "leaf_order": names, "clusters": {}, "left_out": list(labels)}
    z = linkage(np.nan_to_num(sub), method="ward")
    cut = fcluster(z, t=min(clusters, len(usable)), criterion="maxclust")
    return {"labels": names, "linkage": z.tolist(), "leaf_order": [names[i] for i in leaves_list(z)],
            "clusters": {name: int(c) for name, c in zip(names, cut, strict=True)},
            "left_out": [labels[i] for i in range(len(labels)) if i not in usable]}
