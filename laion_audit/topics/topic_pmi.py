"""Identity–topic PMI over SAE features, exactly as spec §6 writes it (sae_topic_analysis.ipynb c2, c6, c7).

Per SAE, from the feature × identity counts c(f,i) and the decoder directions d_f:

    p(f)   = Σ_i c(f,i) / Σ_f Σ_i c(f,i)
    p(i|f) = (c(f,i) + 1) / Σ_i' (c(f,i') + 1)
    s(f,t) = cos(d_f, e_t), the top-5 t per f kept (others 0), + 1e-8;   p(t|f) = s(f,t) / Σ_t s(f,t)
    p(i) = Σ_f p(i|f) p(f);   p(t) = Σ_f p(t|f) p(f);   p(i,t) = Σ_f p(i|f) p(t|f) p(f)
    PMI(i,t) = log( p(i,t) / (p(i) p(t) + ε) + ε ),  ε = 1e-12;  NaN -> -inf

averaged over SAEs. Topics are greedy complete-link clusters of the topic labels (a label joins the first cluster
whose every member it is more than τ-similar to), named by their sorted labels joined with ", " and re-embedded.
Over τ in linspace(0.80, 0.95, 20), each identity's top-25 clusters give each of their labels the cluster's PMI;
a label's score is the sum divided by the number of τ values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

EPS = 1e-12
SIMILARITY_FLOOR = 1e-8
TOP_TOPICS_PER_FEATURE = 5
TAUS = tuple(float(t) for t in np.linspace(0.80, 0.95, 20))
TOP_CLUSTERS_PER_IDENTITY = 25


def normalise(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def greedy_complete_link(embeddings: np.ndarray, tau: float) -> list[list[int]]:
    """Clusters of row indices, in first-seen order: a row joins the first cluster whose every member has cosine
    > τ with it, else starts a new one."""
    unit = normalise(embeddings)
    similarity = unit @ unit.T
    clusters: list[list[int]] = []
    for i in range(len(unit)):
        for cluster in clusters:
            if all(similarity[i, j] > tau for j in cluster):
                cluster.append(i)
                break
        else:
            clusters.append([i])
    return clusters


def topic_given_feature(atoms: np.ndarray, topics: np.ndarray, top: int = TOP_TOPICS_PER_FEATURE) -> np.ndarray:
    """p(t|f) (F, T) from cosine similarities of decoder directions and topic embeddings."""
    s = normalise(atoms) @ normalise(topics).T
    keep = np.argsort(-s, axis=1, kind="stable")[:, :top]
    kept = np.zeros_like(s)
    np.put_along_axis(kept, keep, np.take_along_axis(s, keep, axis=1), axis=1)
    kept = kept + SIMILARITY_FLOOR
    return kept / kept.sum(axis=1, keepdims=True)


def pmi(counts: np.ndarray, atoms: np.ndarray, topics: np.ndarray, top: int = TOP_TOPICS_PER_FEATURE) -> np.ndarray:
    """PMI (I, T) of one SAE: ``counts`` (F, I) feature × identity, ``atoms`` (F, D), ``topics`` (T, D)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    p_f = counts.sum(axis=1) / total if total > 0 else np.full(len(counts), np.nan)
    p_i_f = (counts + 1) / (counts + 1).sum(axis=1, keepdims=True)
    p_t_f = topic_given_feature(atoms, topics, top)
    p_i = p_i_f.T @ p_f
    p_t = p_t_f.T @ p_f
    p_it = (p_i_f * p_f[:, None]).T @ p_t_f
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.log(p_it / (np.outer(p_i, p_t) + EPS) + EPS)
    return np.where(np.isnan(value), -np.inf, value)


def mean_pmi(per_sae: Sequence[tuple[np.ndarray, np.ndarray]], topics: np.ndarray) -> np.ndarray:
    """PMI averaged over SAEs; each item is (counts (F, I), atoms (F, D))."""
    return np.mean([pmi(counts, atoms, topics) for counts, atoms in per_sae], axis=0)


def cluster_name(labels: Sequence[str], members: Sequence[int]) -> str:
    return ", ".join(sorted(labels[j] for j in members))


def topic_scores(labels: Sequence[str], label_embeddings: np.ndarray,
                 embed: Callable[[list[str]], np.ndarray], per_sae: Sequence[tuple[np.ndarray, np.ndarray]],
                 taus: Sequence[float] = TAUS, top_clusters: int = TOP_CLUSTERS_PER_IDENTITY) -> np.ndarray:
    """Score (I, L) of each label for each identity, aggregated over the τ sweep (module docstring).

    ``embed`` embeds cluster names (normalised); ``label_embeddings`` are the labels' (normalised) embeddings.
    """
    scores = np.zeros((per_sae[0][0].shape[1], len(labels)))
    for tau in taus:
        clusters = greedy_complete_link(label_embeddings, tau)
        names = [cluster_name(labels, members) for members in clusters]
        values = mean_pmi(per_sae, embed(names))
        for i in range(values.shape[0]):
            for c in np.argsort(-values[i], kind="stable")[:top_clusters]:
                for j in clusters[c]:
                    scores[i, j] += values[i, c]
    return scores / len(taus)
