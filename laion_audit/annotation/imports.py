"""Import annotations made elsewhere (the paper's scripts' CSVs, or parquet in this project's schemas) as shards.

A user who already has boxes, labels or captions should audit them without a GPU. The import writes the same
per-shard tables the model assets write (person_boxes; gender_labels / race_labels; person_captions, the last
two restricted), so every downstream asset and the lineage checks work on them unchanged. Only provenance
differs: ``model_name`` is "imported" and ``model_fingerprint`` is "imported from <file> sha256 <...>", and the
marker's recipe names no model, the asset's code version, settings ``{"imported": {file, sha256, format,
importer}}`` and the upstream partition the rows were matched against (``samples`` for boxes, ``person_boxes``
for labels and captions, whose box ids they take).

Input layouts (../shared/spec/paper_methods.md §2-4): ``tarball_name, member_name, x1, y1, x2, y2`` (+
``confidence``) for boxes; the same + ``predicted_gender`` / ``predicted_race`` for labels; + ``caption`` for
captions. Parquet uses the schemas' columns (``shard, key`` and either ``box_id`` or ``x1..y2``; ``label`` and
``p_*``; ``caption``). Labels and captions are matched to person_boxes by box id or, for CSVs, by coordinates
(within ``BOX_MATCH_TOLERANCE`` px), so boxes must be imported (or detected) first.

Nothing is dropped silently. A row that cannot be placed (unknown shard: not registered or no ``samples``
marker; unknown key; no matching box; duplicate) goes to the import report. A row that can be placed but is bad
becomes an error row of its sample: a box outside the image (checked against ``samples`` width/height) turns its
sample into one ``error`` row (keeping the sample's other boxes would attribute it by a partial set of persons);
an unknown label or empty caption gives its box an ``error`` row. Every sample key of a written shard is
accounted for the way the model assets do it (detection.py, person_annotation.py).

A later normal run does not replace an import while the import is current (same code version, same upstream
data): see ``defs/shard_runs.write_shard``. ``force: true`` in the asset's run config replaces it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from laion_audit.annotation.detection import DEFAULT_MIN_SIDE
from laion_audit.annotation.person_annotation import _ordered
from laion_audit.annotation.schemas import (
    GENDER_CLASSES,
    PERSON_BOXES_SCHEMA,
    PERSON_CAPTIONS_SCHEMA,
    RACE_CLASSES,
    label_schema,
)
from laion_audit.shards.lineage import code_version, is_restricted
from laion_audit.shards.recipe import IMPORTED_SETTING, Recipe
from laion_audit.shards.sources import SHARD_KEY_PATTERN, format_shard_key, shard_number_from_name
from laion_audit.shards.store import ERROR_STATUS, Provenance, ShardStore

IMPORTER_VERSION = "import-1"
IMPORTED_MODEL_NAME = "imported"
BOX_MATCH_TOLERANCE = 1.0  # px: the scripts wrote boxes as integers (their crop file names), YOLO gives floats
BOX_EDGE_TOLERANCE = 0.5  # px: a box may end on the image's last pixel edge
KINDS = ("boxes", "labels", "captions")
CLASSES = {"gender": GENDER_CLASSES, "race": RACE_CLASSES}

# Every spelling the paper's scripts wrote (classifier class names, MLLM option strings, normalised MLLM
# categories), compacted to lower-case letters, mapped to the project's classes. "disagreement" (a race
# classifier output) has no project class and is reported as an unknown label.
_LABEL_ALIASES = {
    "gender": {
        "male": "male", "female": "female", "unclear": "unclear", "mixed": "mixed",
        "onlymalepersonvisible": "male", "onlyfemalepersonvisible": "female",
        "bothmaleandfemalepeoplevisible": "mixed", "genderisunclearcannottellnopersonvisible": "unclear",
    },
    "race": {
        **{re.sub(r"[^a-z]", "", name): name for name in RACE_CLASSES},
        "whitecaucasian": "white", "whiteeuropeanorcaucasian": "white", "blackafricanamerican": "black",
        "blackafricanorafricanamerican": "black", "latinohispanic": "latino", "latinohispanicorsouthamerican": "latino",
        "middleeasternnorthafrican": "middle_eastern", "middleeasternarabornorthafrican": "middle_eastern",
        "raceisunclearcannottellnopersonvisible": "unclear",
    },
}
_LABEL_COLUMNS = {"gender": ("label", "predicted_gender", "gender"),
                  "race": ("label", "predicted_race", "race", "answer")}
_COORDS = ("x1", "y1", "x2", "y2")


class ImportFileError(ValueError):
    """The file cannot be imported at all (unreadable, or a required column is missing)."""


@dataclass(frozen=True)
class Rejected:
    """One input row that is in no shard table, and why (never its label or caption)."""

    row: int
    shard: str | None
    key: str | None
    reason: str


@dataclass
class ImportReport:
    asset: str
    file: str
    sha256: str
    rows: int = 0
    written: list[str] = field(default_factory=list)
    skipped_complete: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    sample_rows: int = 0  # rows of a parquet in the schema with no box (a sample without persons)
    error_rows: Counter = field(default_factory=Counter)  # reason -> rows published with status "error"
    unknown_labels: Counter = field(default_factory=Counter)  # value -> count (aggregate only)
    markers: dict[str, dict[str, Any]] = field(default_factory=dict)
    report_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"asset": self.asset, "file": self.file, "sha256": self.sha256, "rows": self.rows,
                "sample_rows": self.sample_rows, "written": self.written, "skipped_complete": self.skipped_complete,
                "rejected": [vars(r) for r in self.rejected],
                "rejected_by_reason": dict(Counter(r.reason for r in self.rejected)),
                "error_rows_by_reason": dict(self.error_rows), "unknown_label_values": dict(self.unknown_labels)}


@dataclass(frozen=True)
class _Imported:
    """Stands in for a model in the rows: what every table says produced it."""

    name: str
    fingerprint: str
    random_weights: bool = False


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def target_asset(kind: str, question: str | None = None) -> str:
    if kind == "boxes":
        return "person_boxes"
    if kind == "captions":
        return "person_captions"
    if kind == "labels":
        if question not in CLASSES:
            raise ValueError("labels need --question gender or race")
        return f"{question}_labels"
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def import_recipe(asset: str, file_name: str, sha256: str, file_format: str, upstream: Mapping[str, str],
                  extra_settings: Mapping[str, Any] | None = None) -> Recipe:
    """The asset's code version (the rows have its layout), no model, the file as the setting."""
    settings = {IMPORTED_SETTING: {"file": file_name, "sha256": sha256, "format": file_format,
                             "importer": IMPORTER_VERSION}, **(extra_settings or {})}
    return Recipe(asset, code_version(asset), models={}, settings=settings, upstream=dict(upstream))


# ------------------------------------------------------------------ reading the file
def _read_rows(path: Path) -> tuple[str, list[dict[str, Any]]]:
    if path.suffix.lower() == ".parquet":
        return "parquet", pq.read_table(path).to_pylist()
    with open(path, newline="", encoding="utf-8") as handle:
        return "csv", list(csv.DictReader(handle))


def _first(row: Mapping[str, Any], names: Iterable[str]) -> Any:
    for name in names:
        if name in row:
            return row[name]
    return None


def _shard_of(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    if SHARD_KEY_PATTERN.fullmatch(text):
        return text
    number = shard_number_from_name(text.rsplit("/", 1)[-1])
    try:
        return None if number is None else format_shard_key(number)
    except ValueError:
        return None


def _key_of(value: Any, known: set[str], width: int | None) -> str | None:
    """The sample key: a member name without its extension; an integer (leading zeros lost) padded as the shard's."""
    if value is None or value == "":
        return None
    key = str(value).strip().rsplit("/", 1)[-1].split(".", 1)[0]
    if key not in known and key.isdigit() and width:
        key = key.zfill(width)
    return key


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _label(question: str, value: Any) -> str | None:
    if value is None:
        return None
    return _LABEL_ALIASES[question].get(re.sub(r"[^a-z]", "", str(value).lower()))


# ------------------------------------------------------------------ per-shard tables
def _boxes_table(shard: str, samples: pa.Table, rows: list[tuple[int, dict]], model: _Imported,
                 min_side: float, report: ImportReport) -> pa.Table:
    """A row per imported box, or one row per sample saying why it has none (as detection.py does)."""
    by_key: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for line, row in rows:
        by_key[row["_key"]].append((line, row))
    base = {"shard": shard, "box_id": None, "n_boxes": 0, "status": "ok", "error": None,
            "model_name": model.name, "model_fingerprint": model.fingerprint, "random_weights": model.random_weights}
    out: list[dict[str, Any]] = []
    for sample in samples.select(["key", "has_image", "status", "error_kind", "source_format", "width",
                                  "height"]).to_pylist():
        key, found = sample["key"], by_key.get(sample["key"], [])
        width, height = sample["width"], sample["height"]
        if not sample["has_image"] or not width or not height:
            if sample["source_format"] != "webdataset":
                out.append({**base, "key": key, "status": "no_image", "error": "text-only shard: no image"})
            else:
                out.append({**base, "key": key, "status": "upstream_error",
                            "error": f"samples: {sample['error_kind'] or sample['status']}"})
            report.rejected.extend(Rejected(line, shard, key, "sample has no image") for line, _ in found)
            continue
        problems = [_box_problem(row, width, height) for _, row in found]
        if any(problems):
            reason = "; ".join(sorted({p for p in problems if p}))
            report.error_rows[reason] += 1
            out.append({**base, "key": key, "status": ERROR_STATUS, "error": f"imported boxes rejected: {reason}",
                        "image_width": width, "image_height": height})
            continue
        if not found:
            out.append({**base, "key": key, "image_width": width, "image_height": height})
            continue
        for box_id, (_, row) in enumerate(found):
            x1, y1, x2, y2 = (row[c] for c in _COORDS)
            out.append({**base, "key": key, "box_id": box_id, "n_boxes": len(found), "x1": x1, "y1": y1, "x2": x2,
                        "y2": y2, "confidence": _number(row.get("confidence")),
                        "area_fraction": (x2 - x1) * (y2 - y1) / float(width * height),
                        "valid": min(x2 - x1, y2 - y1) >= min_side, "image_width": width, "image_height": height})
    return pa.Table.from_pylist(out, schema=PERSON_BOXES_SCHEMA)


def _box_problem(row: dict, width: int, height: int) -> str | None:
    x1, y1, x2, y2 = (row[c] for c in _COORDS)
    if None in (x1, y1, x2, y2):
        return "non-numeric coordinates"
    if not (x1 < x2 and y1 < y2):
        return "empty box (x2 <= x1 or y2 <= y1)"
    tol = BOX_EDGE_TOLERANCE
    if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
        return "box outside the image"
    return None


def _match_box(row: dict, boxes: list[dict]) -> dict | None:
    if row.get("box_id") is not None:
        return next((b for b in boxes if b["box_id"] == int(row["box_id"])), None)
    coords = [row[c] for c in _COORDS]
    if None in coords:
        return None
    distance = [(max(abs(b[c] - v) for c, v in zip(_COORDS, coords)), i) for i, b in enumerate(boxes)]
    best = min(distance, default=None)
    return boxes[best[1]] if best is not None and best[0] <= BOX_MATCH_TOLERANCE else None


def _person_table(shard: str, boxes: pa.Table, rows: list[tuple[int, dict]], model: _Imported,
                  report: ImportReport, value_of: Callable[[dict], tuple[dict | None, str | None]],
                  schema: pa.Schema, missing_reason: str) -> pa.Table:
    """Labels or captions: a row per valid box (its imported value, or an error row), fallbacks per sample."""
    valid = [b for b in boxes.select(["key", "box_id", "x1", "y1", "x2", "y2", "valid"]).to_pylist()
             if b["box_id"] is not None and b["valid"]]
    by_key: dict[str, list[dict]] = defaultdict(list)
    for box in valid:
        by_key[box["key"]].append(box)
    taken: dict[tuple[str, int], dict] = {}
    for line, row in rows:
        key = row["_key"]
        box = _match_box(row, by_key.get(key, []))
        if box is None:
            report.rejected.append(Rejected(line, shard, key, "no matching valid box in person_boxes"))
            continue
        if (key, box["box_id"]) in taken:
            report.rejected.append(Rejected(line, shard, key, "a second row for the same box"))
            continue
        values, problem = value_of(row)
        base = {"shard": shard, "key": key, "box_id": box["box_id"], "model_name": model.name,
                "model_fingerprint": model.fingerprint, "random_weights": model.random_weights}
        if problem:
            report.error_rows[problem] += 1
            taken[(key, box["box_id"])] = {**base, "status": ERROR_STATUS, "error": problem}
        else:
            taken[(key, box["box_id"])] = {**base, **values, "status": "ok", "error": None}
    person_rows = []
    for box in valid:
        row = taken.get((box["key"], box["box_id"]))
        if row is None:
            report.error_rows[missing_reason] += 1
            row = {"shard": shard, "key": box["key"], "box_id": box["box_id"], "status": ERROR_STATUS,
                   "error": missing_reason, "model_name": model.name, "model_fingerprint": model.fingerprint,
                   "random_weights": model.random_weights}
        person_rows.append(row)
    return pa.Table.from_pylist(_ordered(boxes, person_rows, model), schema=schema)


def _label_value(question: str, classes: tuple[str, ...], report: ImportReport):
    def value_of(row: dict) -> tuple[dict | None, str | None]:
        raw = _first(row, _LABEL_COLUMNS[question])
        label = _label(question, raw)
        if label is None:
            report.unknown_labels[str(raw)] += 1
            return None, f"imported label is not one of the {question} classes"
        return {"label": label, **{f"p_{c}": _number(row.get(f"p_{c}")) for c in classes}}, None
    return value_of


def _caption_value(row: dict) -> tuple[dict | None, str | None]:
    caption = row.get("caption")
    if caption is None or not str(caption).strip():
        return None, "imported caption is empty"
    return {"caption": str(caption)}, None


# ------------------------------------------------------------------ the import
def import_annotations(
    store: ShardStore,
    path: Path,
    kind: str,
    *,
    question: str | None = None,
    registered: set[str] | None = None,
    min_side: float = DEFAULT_MIN_SIDE,
    run_id: str | None = None,
) -> ImportReport:
    """Write one shard table per shard the file names; skip shards already imported from this file and data.

    ``registered``: the shard keys Dagster knows (None: do not check); a shard outside it, or without a
    ``samples`` marker, is an unknown shard and its rows go to the report.
    """
    path = Path(path)
    asset = target_asset(kind, question)
    restricted = is_restricted(asset)
    sha256 = file_sha256(path)
    file_format, raw_rows = _read_rows(path)
    required = {"boxes": _COORDS, "labels": (), "captions": ("caption",)}[kind]
    columns = set(raw_rows[0]) if raw_rows else set()
    missing = [c for c in (*required,) if raw_rows and c not in columns]
    if raw_rows and not ({"tarball_name", "shard"} & columns and {"member_name", "key"} & columns):
        missing.append("tarball_name/shard and member_name/key")
    if kind == "labels" and raw_rows and not set(_LABEL_COLUMNS[question]) & columns:
        missing.append(" or ".join(_LABEL_COLUMNS[question]))
    if missing:
        raise ImportFileError(f"{path.name}: missing column(s) {', '.join(missing)}")
    report = ImportReport(asset, path.name, sha256, rows=len(raw_rows))
    model = _Imported(IMPORTED_MODEL_NAME, f"imported from {path.name} sha256 {sha256}")

    by_shard: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for line, row in enumerate(raw_rows, start=1):
        shard = _shard_of(_first(row, ("shard", "tarball_name")))
        if shard is None:
            report.rejected.append(Rejected(line, None, None, "no shard number in tarball_name/shard"))
            continue
        by_shard[shard].append((line, row))

    upstream_asset = "samples" if kind == "boxes" else "person_boxes"
    for shard, rows in sorted(by_shard.items()):
        upstream_marker = store.read_marker(upstream_asset, shard)
        samples_marker = upstream_marker if kind == "boxes" else store.read_marker("samples", shard)
        reason = None
        if (registered is not None and shard not in registered) or samples_marker is None:
            reason = "unknown shard (not registered or no samples)"
        elif upstream_marker is None or "data_version" not in upstream_marker:
            reason = "person_boxes not complete for this shard: import or detect boxes first"
        if reason:
            report.rejected.extend(Rejected(line, shard, None, reason) for line, _ in rows)
            continue
        upstream_table = store.read_marked(upstream_asset, shard, upstream_marker)
        keys = upstream_table.column("key").to_pylist()
        known = set(keys)
        widths = {len(k) for k in keys}
        width = widths.pop() if len(widths) == 1 else None
        placed: list[tuple[int, dict]] = []
        for line, row in rows:
            if "box_id" in row and row["box_id"] is None and all(row.get(c) is None for c in _COORDS):
                report.sample_rows += 1  # a parquet row saying "no person": the samples table decides that
                continue
            key = _key_of(_first(row, ("key", "member_name")), known, width)
            if key not in known:
                report.rejected.append(Rejected(line, shard, key, "unknown sample key"))
                continue
            placed.append((line, {**row, "_key": key, **{c: _number(row.get(c)) for c in _COORDS}}))
        settings = {"min_side": min_side} if kind == "boxes" else {"question": question} if question else {}
        recipe = import_recipe(asset, path.name, sha256, file_format,
                               {upstream_asset: upstream_marker["data_version"]}, settings)
        # The table is built even when the shard is complete, so the report of a repeated import is complete too.
        if kind == "boxes":
            table = _boxes_table(shard, upstream_table, placed, model, min_side, report)
        elif kind == "labels":
            classes = CLASSES[question]
            table = _person_table(shard, upstream_table, placed, model, report,
                                  _label_value(question, classes, report), label_schema(classes),
                                  "no label for this box in the imported file")
        else:
            table = _person_table(shard, upstream_table, placed, model, report, _caption_value,
                                  PERSON_CAPTIONS_SCHEMA, "no caption for this box in the imported file")
        if (marker := store.complete_marker(recipe, shard, restricted)) is not None:
            report.skipped_complete.append(shard)
            report.markers[shard] = marker
            continue
        persons = table.filter(table["box_id"].is_valid())
        extra = {"imported_from": path.name, "imported_sha256": sha256, "persons": persons.num_rows,
                 "rejected_rows": sum(1 for r in report.rejected if r.shard == shard)}
        if kind == "boxes":
            extra["valid_persons"] = sum(v for v in persons.column("valid").to_pylist() if v)
        provenance = Provenance(recipe, shard, run_id or f"import-{uuid.uuid4().hex[:12]}")
        report.markers[shard] = store.write_table(provenance, table, restricted=restricted, marker_extra=extra)
        report.written.append(shard)
    report.report_path = _write_report(store, report)
    return report


def _write_report(store: ShardStore, report: ImportReport) -> str:
    """The rejected rows, by row number and reason, beside the store's reports (written whole or not at all)."""
    path = f"{store.reports_dir}/imports/{report.asset}.{report.sha256[:16]}.json"
    store.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with store.fs.open(tmp, "w") as handle:
        json.dump(report.to_dict(), handle, indent=1, sort_keys=True)
    store.fs.mv(tmp, path)
    return path
