"""Every regression of model bias on dataset bias the published per-model results allow (Dagster-free).

* CLIP: for each model, word list and image set, the words with a published dataset bias (n_f + n_m ≥ min_count)
  and a published model bias; x = dataset bias, y = CLIP bias.
* Stable Diffusion: for each model and word list, the prompted categories whose category (or "<category>
  person", as the paper's notebook allows) has a published dataset bias and whose prompt was not skipped;
  x = dataset female share n_f / (n_f + n_m), y = female share of the kept generated images (spec §7, c6).

A combination with too few words keeps a row with the reason instead of a fit.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from laion_audit.stats.transfer_regression import (
    MIN_WORDS,
    PAPER_PEARSON,
    PAPER_R2,
    fit_transfer,
    in_paper_range,
    scatter_png,
)


def _fit_row(family: str, model: str, word_list: str, image_set: str, pairs: list[tuple[str, float, float]],
             alpha: float, plots: list[tuple[str, bytes]], labels: tuple[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {"family": family, "model": model, "word_list": word_list, "image_set": image_set,
                           "n_words": len(pairs), "r2": None, "pearson_r": None, "reason": None}
    x = [p[1] for p in pairs]
    y = [p[2] for p in pairs]
    try:
        fit = fit_transfer(x, y, alpha=alpha)
    except ValueError as exc:
        row["reason"] = str(exc)
        return row
    row.update(fit)
    row["reading"] = in_paper_range(fit["r2"], fit["pearson_r"])
    title = f"{model} · {word_list} · {image_set}"
    plots.append((title, scatter_png(x, y, fit, title, *labels)))
    return row


def regressions(dataset_words: Sequence[Mapping[str, Any]], clip_reports: Mapping[str, Mapping[str, Any]],
                sd_reports: Mapping[str, Mapping[str, Any]], *, alpha: float = 0.05) -> dict[str, Any]:
    data = {(w["word_list"], w["word"]): w for w in dataset_words if w.get("bias") is not None}
    fits: list[dict[str, Any]] = []
    plots: list[tuple[str, bytes]] = []
    for role, report in sorted(clip_reports.items()):
        groups: dict[tuple[str, str], list[tuple[str, float, float]]] = {}
        for row in report["rows"]:
            key = (row["word_list"], row["image_set"])
            groups.setdefault(key, [])
            found = data.get((row["word_list"], row["word"]))
            if row.get("bias") is not None and found is not None:
                groups[key].append((row["word"], float(found["bias"]), float(row["bias"])))
        for (word_list, image_set), pairs in sorted(groups.items()):
            fits.append(_fit_row("clip", role, word_list, image_set, pairs, alpha, plots,
                                 ("dataset bias (n_f - n_m)/(n_f + n_m)", "CLIP bias")))
    lists = sorted({w for w, _ in data})
    for role, report in sorted(sd_reports.items()):
        if not lists:
            fits.append({"family": "stable_diffusion", "model": role, "word_list": None, "image_set": "generated",
                         "n_words": 0, "r2": None, "pearson_r": None,
                         "reason": "no word has a published dataset bias"})
        for word_list in lists:
            pairs = []
            for prompt in report["prompts"]:
                if prompt.get("female_share") is None:
                    continue
                found = data.get((word_list, prompt["category"])) or data.get((word_list, f"{prompt['category']} person"))
                if found is not None:
                    pairs.append((prompt["category"], float(found["female_share"]), float(prompt["female_share"])))
            fits.append(_fit_row("stable_diffusion", role, word_list, "generated", pairs, alpha, plots,
                                 ("dataset female share", "generated female share")))
    return {"fits": fits, "summary": summary(fits), "plots": plots}


def _spread(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def summary(fits: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per model family: how many fits, R² and r as min / median / max, beside the paper's ranges."""
    rows = []
    for family in sorted({f["family"] for f in fits}) or ["clip"]:
        done = [f for f in fits if f["family"] == family and f.get("r2") is not None]
        rows.append({"family": family, "fits": len(done),
                     "skipped": sum(1 for f in fits if f["family"] == family and f.get("r2") is None),
                     "r2_min_median_max": _spread([f["r2"] for f in done]),
                     "pearson_min_median_max": _spread([f["pearson_r"] for f in done]),
                     "paper_r2": f"{PAPER_R2[0]}–{PAPER_R2[1]}", "paper_pearson": f"{PAPER_PEARSON[0]}–{PAPER_PEARSON[1]}",
                     "min_words": MIN_WORDS})
    return rows
