"""Answering "which model produced this label?" from the shard files themselves.

The Dagster database records runs, but the audit record is the data: every row names its model, weights
fingerprint, code version and run id. `describe_sample` gathers, for one sample, each per-person row of every
annotation table with that provenance, so `laion-audit provenance SHARD KEY` can print it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow.compute as pc

from laion_audit.shards.store import ShardStore

# (asset, restricted, value column) for the per-person annotation tables, in pipeline order.
PERSON_TABLES = (
    ("person_boxes", False, "confidence"),
    ("gender_labels", True, "label"),
    ("race_labels", True, "label"),
    ("person_captions", False, "caption"),
)


@dataclass(frozen=True)
class ProvenanceLine:
    asset: str
    box_id: int | None
    value: Any
    status: str
    model_name: str | None
    model_fingerprint: str | None
    code_version: str
    run_id: str


def describe_sample(store: ShardStore, shard: str, key: str) -> tuple[dict[str, Any] | None, list[ProvenanceLine]]:
    """The sample's `samples` row (or None) and one line per (table, person) found for it."""
    sample = None
    if store.read_marker("samples", shard):
        table = store.read_table("samples", shard)
        matches = table.filter(pc.equal(table["key"], key)).to_pylist()
        sample = matches[0] if matches else None
    lines: list[ProvenanceLine] = []
    for asset, restricted, value_column in PERSON_TABLES:
        if not store.read_marker(asset, shard, restricted):
            continue
        table = store.read_table(asset, shard, restricted)
        for row in table.filter(pc.equal(table["key"], key)).to_pylist():
            lines.append(
                ProvenanceLine(
                    asset=asset,
                    box_id=row.get("box_id"),
                    value=row.get(value_column),
                    status=row["status"],
                    model_name=row.get("model_name"),
                    model_fingerprint=row.get("model_fingerprint"),
                    code_version=row["code_version"],
                    run_id=row["run_id"],
                )
            )
    return sample, lines


def render(shard: str, key: str, sample: dict[str, Any] | None, lines: list[ProvenanceLine]) -> str:
    if sample is None and not lines:
        return f"no sample {key} in shard {shard} (is the shard materialized?)"
    out = [f"sample {shard}/{key}"]
    if sample is not None:
        out.append(f"  samples: status {sample['status']}" + (f" ({sample['error']})" if sample["error"] else "")
                   + f"  [code {sample['code_version']}, run {sample['run_id']}]")
    persons = sorted({line.box_id for line in lines}, key=lambda b: (b is None, b))
    for box_id in persons:
        out.append(f"  person {box_id}" if box_id is not None else "  (no person)")
        for line in (line for line in lines if line.box_id == box_id):
            value = line.value if not isinstance(line.value, str) or len(line.value) < 70 else line.value[:67] + "..."
            value = f"{value:.3f}" if isinstance(value, float) else value
            out.append(
                f"    {line.asset:<16} {value!s:<20} model {line.model_name} "
                f"(weights {str(line.model_fingerprint)[:16]}), code {line.code_version}, run {line.run_id}"
                + ("" if line.status == "ok" else f"  [{line.status}]")
            )
    return "\n".join(out)
