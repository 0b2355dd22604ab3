"""c(f, i): how often each perceived intersectional identity is among a feature's top-activating captions.

The paper reads these counts from files (`identity_counts_d{d}_n100.pt`) whose construction is not public
(spec §6). Ours, stated: identities are perceived race × gender from the chain's labels (7 races × male/female =
14; a person labelled unclear or mixed on either axis has no identity and is left out). For each SAE feature,
the n captions (default 100) with the largest positive inference-time activation are taken over every embedded
person with an identity, and c(f, i) counts the identities among them. Streaming: a running top-n per feature
is merged with each shard's activations, so memory is features × n, never the dataset.

These counts and the persons per identity are small demographic cells: they stay in memory (and in restricted
storage) and only suppressed aggregates are published.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from laion_audit.annotation.schemas import RACE_CLASSES

GENDERS = ("male", "female")
RACES = tuple(r for r in RACE_CLASSES if r != "unclear")
IDENTITIES = tuple(f"{race}_{gender}" for race in RACES for gender in GENDERS)
_INDEX = {name: i for i, name in enumerate(IDENTITIES)}


def identity_index(race: str | None, gender: str | None) -> int:
    """Index into IDENTITIES, or -1 when either label is missing, unclear or mixed."""
    return _INDEX.get(f"{race}_{gender}", -1)


def identities_for(keys: pa.Table, gender_labels: pa.Table, race_labels: pa.Table) -> np.ndarray:
    """Identity index per row of ``keys`` (key, box_id), -1 where a label is missing or not a single identity."""
    def lookup(labels: pa.Table) -> dict:
        ok = labels.filter(pc.equal(labels["status"], "ok"))
        return {(k, b): label for k, b, label in zip(ok["key"].to_pylist(), ok["box_id"].to_pylist(),
                                                     ok["label"].to_pylist(), strict=True)}

    gender, race = lookup(gender_labels), lookup(race_labels)
    pairs = list(zip(keys["key"].to_pylist(), keys["box_id"].to_pylist(), strict=True))
    return np.array([identity_index(race.get(p), gender.get(p)) for p in pairs], dtype=np.int64)


class TopActivations:
    """A running top-n (activation, identity) per feature over a stream of (activations, identities)."""

    def __init__(self, features: int, n: int):
        self.n = n
        self.values = torch.zeros(features, 0)
        self.ids = torch.zeros(features, 0, dtype=torch.long)

    def update(self, codes: torch.Tensor, ids: torch.Tensor) -> None:
        """``codes`` (m, F) inference activations of m persons; ``ids`` (m,) their identity indices (>= 0)."""
        values = torch.cat([self.values, codes.T], dim=1)
        identities = torch.cat([self.ids, ids[None, :].expand(codes.shape[1], -1)], dim=1)
        top = values.topk(min(self.n, values.shape[1]), dim=1)
        self.values, self.ids = top.values, identities.gather(1, top.indices)

    def counts(self, n_identities: int = len(IDENTITIES)) -> np.ndarray:
        """c(f, i) (F, I): identities among each feature's kept captions with a positive activation."""
        counts = np.zeros((self.values.shape[0], n_identities), dtype=np.int64)
        active = self.values > 0
        rows = torch.arange(self.values.shape[0])[:, None].expand_as(self.ids)
        np.add.at(counts, (rows[active].numpy(), self.ids[active].numpy()), 1)
        return counts
