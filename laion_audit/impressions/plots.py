"""PNG figures of the facial impression audit (matplotlib, Agg: no display needed)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def similarity_heatmap(similarity: Mapping[str, Mapping[str, float]], attributes: Sequence[str]) -> bytes:
    """Models (rows) × attributes (columns): Spearman ρ between model association and human mean rating."""
    models = list(similarity)
    values = np.array([[similarity[m].get(a, np.nan) for a in attributes] for m in models], dtype=float)
    fig = _figure(max(6.0, 0.28 * len(attributes) + 2), max(2.0, 0.35 * len(models) + 1.5))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(values, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(attributes)), attributes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(models)), models, fontsize=7)
    ax.set_title("Model–human similarity (Spearman ρ)")
    fig.colorbar(image, ax=ax, fraction=0.03)
    return _png(fig)


def irr_scatter(mean_similarity: Mapping[str, Mapping[str, float]], irr: Mapping[str, float]) -> bytes:
    """Per family: mean ρ over its models (y) against the human IRR (x), one point per attribute."""
    fig = _figure(6, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for family, by_attribute in mean_similarity.items():
        attributes = [a for a in irr if by_attribute.get(a) is not None]
        ax.scatter([irr[a] for a in attributes], [by_attribute[a] for a in attributes], label=family, s=14)
    ax.set_xlabel("human inter-rater reliability (Peterson et al. 2022)")
    ax.set_ylabel("mean model–human ρ")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.legend(fontsize=7)
    return _png(fig)


def dendrogram(linkage: list, labels: Sequence[str], title: str) -> bytes:
    from scipy.cluster.hierarchy import dendrogram as draw

    fig = _figure(5, max(3.0, 0.18 * len(labels) + 1))
    ax = fig.add_subplot(1, 1, 1)
    if linkage:
        draw(np.asarray(linkage), labels=list(labels), orientation="left", ax=ax, leaf_font_size=7)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def share_bars(shares: Sequence[Mapping[str, float]], threshold: float) -> bytes:
    """Per model: the share of scored samples at or above the threshold (kept by the filter)."""
    fig = _figure(6, max(2.0, 0.35 * len(shares) + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    names = [row["model"] for row in shares]
    ax.barh(range(len(names)), [row["share_kept"] or 0 for row in shares])
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share with image–text cosine ≥ {threshold}")
    return _png(fig)
