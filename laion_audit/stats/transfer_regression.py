"""Does model bias follow dataset bias? OLS of model bias on dataset bias per model × word list × image set.

Spec §7: the paper fits ``np.polyfit(data, model, 1)``, reports ``R² = r2_score(model, fitted)`` and Pearson r
(scipy). For one predictor with an intercept, OLS R² equals r² and polyfit's line is the OLS line, so fitting
with statsmodels gives the same numbers plus the slope's standard error, p-value and confidence interval. The
CI of r is Fisher's z interval: tanh(atanh(r) ± z_{1−α/2} / √(n − 3)); n ≥ 4 words are needed for it, n ≥ 3 for
a fit at all.

The paper reports R² 0.57–0.71 and r 0.75–0.84 (which fits those ranges cover is not stated).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

PAPER_R2 = (0.57, 0.71)
PAPER_PEARSON = (0.75, 0.84)
MIN_WORDS = 3


def fit_transfer(dataset_bias: Sequence[float], model_bias: Sequence[float], *, alpha: float = 0.05
                 ) -> dict[str, Any]:
    """OLS model = intercept + slope · dataset, with R², Pearson r and their intervals; ``n`` words."""
    import statsmodels.api as sm
    from scipy import stats

    x = np.asarray(dataset_bias, dtype=np.float64)
    y = np.asarray(model_bias, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"{x.size} dataset biases vs {y.size} model biases")
    n = int(x.size)
    if n < MIN_WORDS:
        raise ValueError(f"a fit needs at least {MIN_WORDS} words, got {n}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise ValueError("dataset or model bias is constant over the words: no relation can be estimated")
    fit = sm.OLS(y, sm.add_constant(x)).fit()
    slope_low, slope_high = fit.conf_int(alpha)[1]
    r, r_p = stats.pearsonr(x, y)
    r = float(r)
    if n > 3 and abs(r) < 1:
        half = stats.norm.ppf(1 - alpha / 2) / math.sqrt(n - 3)
        r_low, r_high = math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half)
    else:
        r_low = r_high = None
    return {"n_words": n, "slope": float(fit.params[1]), "intercept": float(fit.params[0]),
            "slope_ci_low": float(slope_low), "slope_ci_high": float(slope_high), "slope_p": float(fit.pvalues[1]),
            "r2": float(fit.rsquared), "pearson_r": r, "pearson_p": float(r_p), "pearson_ci_low": r_low,
            "pearson_ci_high": r_high, "confidence": 1 - alpha}


def in_paper_range(r2: float | None, r: float | None) -> str:
    """A plain reading of a fit beside the paper's ranges."""
    if r2 is None or r is None:
        return "no fit"
    inside = PAPER_R2[0] <= r2 <= PAPER_R2[1] and PAPER_PEARSON[0] <= r <= PAPER_PEARSON[1]
    return "within the paper's ranges" if inside else ("above" if r2 > PAPER_R2[1] else "below") + " the paper's R²"


def scatter_png(dataset_bias: Sequence[float], model_bias: Sequence[float], fit: dict[str, Any] | None,
                title: str, xlabel: str, ylabel: str) -> bytes:
    """A scatter of the words with the fitted line (matplotlib, Agg), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.4), dpi=80)
    ax.scatter(dataset_bias, model_bias, s=12, alpha=0.7)
    if fit is not None:
        xs = np.linspace(min(dataset_bias), max(dataset_bias), 2)
        ax.plot(xs, fit["intercept"] + fit["slope"] * xs, color="crimson",
                label=f"R²={fit['r2']:.2f}, r={fit['pearson_r']:.2f}, n={fit['n_words']}")
        ax.legend(fontsize=7, loc="best")
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
