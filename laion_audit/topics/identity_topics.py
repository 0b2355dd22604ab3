"""The identity–topic table: top topics per perceived intersectional identity, from the SAEs and the topic
vocabulary (topic_pmi.py for the formulas, identity_counts.py for c(f, i)).

Identities with fewer than k_min persons (default 10) are suppressed: no score and no person count of theirs is
published; the remaining identities' scores still come from all 14 identities' counts (p(i|f) normalises over
them), as in the paper.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from laion_audit.topics.caption_embedding import EmbeddingStore, NoEmbeddingsError
from laion_audit.topics.identity_counts import IDENTITIES, TopActivations, identities_for
from laion_audit.topics.sae import TopKSAE
from laion_audit.topics.topic_pmi import TAUS, topic_scores

LABEL_COLUMNS = ["key", "box_id", "label", "status"]


def count_identities(source: EmbeddingStore, labels: Mapping[str, Mapping[str, Mapping[str, Any]]],
                     saes: Sequence[TopKSAE], top_n: int) -> dict[str, Any]:
    """c(f, i) per SAE and persons per identity, streamed shard by shard.

    ``labels`` is {"gender_labels": {shard: marker}, "race_labels": {...}}; a shard with embeddings but without
    both label files is left out and named.
    """
    store = source.store
    tops = [TopActivations(sae.dict_size, top_n) for sae in saes]
    persons = np.zeros(len(IDENTITIES), dtype=np.int64)
    without_labels, used = [], []
    for shard, keys, vectors in source.passes():
        if not all(shard in by_shard for by_shard in labels.values()):
            without_labels.append(shard)
            continue
        tables = {asset: store.read_marked(asset, shard, by_shard[shard], restricted=True, columns=LABEL_COLUMNS)
                  for asset, by_shard in labels.items()}
        ids = identities_for(keys, tables["gender_labels"], tables["race_labels"])
        keep = ids >= 0
        if not keep.any():
            used.append(shard)
            continue
        persons += np.bincount(ids[keep], minlength=len(IDENTITIES))
        x, id_tensor = torch.from_numpy(vectors[keep]), torch.from_numpy(ids[keep])
        with torch.no_grad():
            for sae, top in zip(saes, tops, strict=True):
                top.update(sae.encode(x), id_tensor)
        used.append(shard)
    if not used:
        raise NoEmbeddingsError("no shard has caption embeddings and both label files")
    return {"counts": [top.counts() for top in tops], "persons": persons, "shards": used,
            "shards_without_labels": without_labels}


def identity_topics(counted: Mapping[str, Any], saes: Sequence[TopKSAE], labels: Sequence[str], embedder: Any, *,
                    k_min: int = 10, top_report: int = 20, taus: Sequence[float] = TAUS,
                    batch_size: int = 1024) -> dict[str, Any]:
    """Top ``top_report`` topic labels per identity with their scores; small identities suppressed."""
    per_sae = [(counts, sae.atoms.detach().cpu().numpy()) for counts, sae in zip(counted["counts"], saes, strict=True)]
    label_embeddings = embedder.embed(list(labels), batch_size, normalize=True)
    scores = topic_scores(labels, label_embeddings, lambda names: embedder.embed(names, batch_size, normalize=True),
                          per_sae, taus=taus)
    rows, suppressed = [], []
    for i, identity in enumerate(IDENTITIES):
        n = int(counted["persons"][i])
        if n < k_min:
            suppressed.append(identity)
            continue
        order = np.argsort(-scores[i], kind="stable")[:top_report]
        rows.extend({"identity": identity, "persons": n, "rank": r + 1, "topic": labels[j],
                     "score": float(scores[i, j])} for r, j in enumerate(order))
    return {"rows": rows, "suppressed_identities": suppressed, "k_min": k_min, "identities": list(IDENTITIES)}


def markdown(result: Mapping[str, Any], per_identity: int = 10) -> str:
    lines = ["| identity | persons | top topics (score) |", "| --- | ---: | --- |"]
    by_identity: dict[str, list[dict]] = {}
    for row in result["rows"]:
        by_identity.setdefault(row["identity"], []).append(row)
    for identity, rows in by_identity.items():
        topics = ", ".join(f"{r['topic']} ({r['score']:.2f})" for r in rows[:per_identity])
        lines.append(f"| {identity} | {rows[0]['persons']} | {topics} |")
    if result["suppressed_identities"]:
        lines.append(f"\nSuppressed (fewer than {result['k_min']} persons): "
                     + ", ".join(result["suppressed_identities"]) + ".")
    return "\n".join(lines)


def chart(result: Mapping[str, Any], per_identity: int = 5) -> bytes | None:
    """PNG: each published identity's top topics as horizontal bars; None when every identity is suppressed."""
    by_identity: dict[str, list[dict]] = {}
    for row in result["rows"]:
        by_identity.setdefault(row["identity"], []).append(row)
    if not by_identity:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(by_identity)
    cols = min(2, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 2.2 * rows), squeeze=False)
    for ax, (identity, items) in zip(axes.flat, by_identity.items()):
        items = items[:per_identity][::-1]
        values = [max(r["score"], -10.0) if np.isfinite(r["score"]) else -10.0 for r in items]
        ax.barh([r["topic"] for r in items], values, color="#4477aa")
        ax.set_title(f"{identity} (n={items[0]['persons']})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Top topics per perceived identity (PMI summed over the τ sweep / 20)", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()
