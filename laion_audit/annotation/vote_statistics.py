"""How the MLLM ensemble behaved on the votes sample, as label-free aggregate figures.

Per member, the parse rate (share of sampled crops whose answer parsed to an option); per pair of members, the
agreement rate (share of sampled crops where both parsed and gave the same class; the diagonal is the parse
rate); and the consensus yield (share of sampled crops with a consensus under the recorded rule). Every rate is
over all sampled crops and none is conditioned on a class, so no figure describes the people of one demographic
class and none needs k-suppression. The counts behind the rates are kept only in the restricted shard marker,
so rates over many shards are exact rather than averages of averages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


@dataclass
class VoteTally:
    """Counts over the sampled crops of one or more vote shards, for one fixed list of members."""

    members: tuple[str, ...]
    crops: int = 0
    consensus: int = 0
    # agree[i][j]: crops where members i and j both parsed and agree; agree[i][i]: crops member i parsed.
    agree: list[list[int]] = field(default_factory=list)

    def __post_init__(self):
        if len(set(self.members)) != len(self.members):
            raise ValueError(f"ensemble members must have distinct names, got {list(self.members)}")
        if not self.agree:
            self.agree = [[0] * len(self.members) for _ in self.members]

    @classmethod
    def of_votes(cls, votes: pa.Table, members: Sequence[str]) -> VoteTally:
        """Tally a votes table (one row per crop and member) for ``members``, in that order."""
        tally = cls(tuple(members))
        index = {name: i for i, name in enumerate(tally.members)}
        answers: dict[tuple[str, int], list[str | None]] = defaultdict(lambda: [None] * len(index))
        agreed: dict[tuple[str, int], bool] = {}
        for row in votes.select(["key", "box_id", "member", "parsed", "consensus"]).to_pylist():
            if row["member"] not in index:
                raise ValueError(f"votes name a member {row['member']!r} outside the ensemble {list(index)}")
            crop = (row["key"], row["box_id"])
            answers[crop][index[row["member"]]] = row["parsed"]
            agreed[crop] = row["consensus"] is not None
        for crop, parsed in answers.items():
            tally.crops += 1
            tally.consensus += agreed[crop]
            for i, a in enumerate(parsed):
                for j, b in enumerate(parsed):
                    tally.agree[i][j] += a is not None and a == b
        return tally

    def add(self, other: VoteTally) -> VoteTally:
        if other.members != self.members:
            raise ValueError(f"cannot pool votes of ensembles {list(self.members)} and {list(other.members)}")
        self.crops += other.crops
        self.consensus += other.consensus
        self.agree = [[a + b for a, b in zip(mine, theirs, strict=True)]
                      for mine, theirs in zip(self.agree, other.agree, strict=True)]
        return self

    def counts(self) -> dict[str, Any]:
        """For the restricted shard marker only."""
        return {"members": list(self.members), "crops": self.crops, "consensus": self.consensus,
                "agree": self.agree}

    @classmethod
    def from_counts(cls, counts: Mapping[str, Any]) -> VoteTally:
        return cls(tuple(counts["members"]), counts["crops"], counts["consensus"],
                   [list(row) for row in counts["agree"]])

    def rates(self) -> dict[str, Any]:
        """The publishable figures: rates over all sampled crops (None when nothing was sampled)."""
        def share(count: int) -> float | None:
            return round(count / self.crops, 4) if self.crops else None

        return {
            "sampled_crops": self.crops,
            "consensus_yield": share(self.consensus),
            "parse_rate": {name: share(self.agree[i][i]) for i, name in enumerate(self.members)},
            "agreement_matrix": {"members": list(self.members),
                                 "matrix": [[share(n) for n in row] for row in self.agree]},
        }


def pooled(tallies: Iterable[VoteTally]) -> VoteTally | None:
    """One tally over several shards; None when there are none."""
    total = None
    for tally in tallies:
        total = VoteTally(tally.members).add(tally) if total is None else total.add(tally)
    return total
