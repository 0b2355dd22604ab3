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
    ("person_captions", True, "caption"),
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
    random_weights: bool | None = None
    valid: bool | None = None  # boxes only
    backbone_fingerprint: str | None = None  # labels only: what the classifier was fine-tuned from
    # Set when the row was computed from boxes other than the current ones (box ids may name other people).
    boxes_warning: str | None = None


def _boxes_warning(marker: dict[str, Any], current_boxes: str | None) -> str | None:
    used = ((marker.get("recipe") or {}).get("upstream") or {}).get("person_boxes")
    if used is None:
        return "does not record which boxes it used"
    if used != current_boxes:
        return (f"computed from boxes {used[:12]}, current boxes are {str(current_boxes)[:12]}: box ids may name "
                "other people; re-materialize it")
    return None


def describe_sample(store: ShardStore, shard: str, key: str) -> tuple[dict[str, Any] | None, list[ProvenanceLine]]:
    """The sample's `samples` row (or None) and one line per (table, person) found for it."""
    sample = None
    if store.read_marker("samples", shard):
        table = store.read_table("samples", shard)
        matches = table.filter(pc.equal(table["key"], key)).to_pylist()
        sample = matches[0] if matches else None
    lines: list[ProvenanceLine] = []
    boxes_marker = store.read_marker("person_boxes", shard) or {}
    for asset, restricted, value_column in PERSON_TABLES:
        marker = store.read_marker(asset, shard, restricted)
        if not marker:
            continue
        warning = None if asset == "person_boxes" else _boxes_warning(marker, boxes_marker.get("data_version"))
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
                    random_weights=row.get("random_weights"),
                    valid=row.get("valid"),
                    backbone_fingerprint=marker.get("classifier_backbone"),
                    boxes_warning=warning,
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
            details = [f"model {line.model_name} (weights {str(line.model_fingerprint)[:16]})"]
            if line.backbone_fingerprint:
                details.append(f"backbone {line.backbone_fingerprint[:16]}")
            if line.random_weights:
                details.append("RANDOM WEIGHTS")
            if line.valid is not None:
                details.append("valid" if line.valid else "not valid (too small)")
            out.append(
                f"    {line.asset:<16} {value!s:<20} {', '.join(details)}, code {line.code_version}, run {line.run_id}"
                + ("" if line.status == "ok" else f"  [{line.status}]")
            )
            if line.boxes_warning:
                out.append(f"      WARNING: {line.asset} {line.boxes_warning}")
    return "\n".join(out)
