"""`laion-audit import`: the paper scripts' CSVs and parquet in the project's schemas become shard partitions.

A real `samples` partition comes from shard_ingest_job over the demo shards; the import files are written by hand
here, with good rows and bad ones, and every expectation is stated from those hand-written rows.
"""

import csv
import hashlib
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_audit.annotation.imports import import_annotations
from laion_audit.ops.cli import main
from laion_audit.shards.recipe import Recipe
from laion_audit.shards.store import ShardStore

from .dagster_harness import dagster_test_instance, definitions, register

SHARD = "00000"


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, sample_shards):
    """The store with `samples` of shard 00000, and that shard's sample rows (read-only for tests)."""
    root = tmp_path_factory.mktemp("import")
    shutil.copytree(sample_shards, root / "shards")
    defs = definitions(root / "shards", root / "store")
    with dagster_test_instance() as instance:
        register(instance, [SHARD])
        assert defs.resolve_job_def("shard_ingest_job").execute_in_process(partition_key=SHARD,
                                                                           instance=instance).success
    samples = ShardStore(str(root / "store")).read_table("samples", SHARD).to_pylist()
    return root / "store", samples


@pytest.fixture
def store(ingested, tmp_path):
    shutil.copytree(ingested[0], tmp_path / "store")
    return ShardStore(str(tmp_path / "store"))


def _with_images(samples, n):
    chosen = [s for s in samples if s["has_image"] and s["width"] >= 40 and s["height"] >= 40][:n]
    assert len(chosen) == n
    return chosen


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _by_key(table):
    rows = {}
    for row in table.to_pylist():
        rows.setdefault(row["key"], []).append(row)
    return rows


BOX_HEADER = ["tarball_name", "member_name", "x1", "y1", "x2", "y2", "confidence"]


def _boxes_csv(tmp_path, samples):
    """A (one box), B (a good box and one outside the image), D (one box); plus an unknown shard and key."""
    a, b, d = _with_images(samples, 3)
    rows = [
        ["00000.tar", f"{a['key']}.jpg", 2, 3, a["width"] - 2, a["height"] - 1, 0.9],
        ["00000.tar", f"{b['key']}.jpg", 0, 0, 30, 30, 0.8],
        ["00000.tar", f"{b['key']}.jpg", 0, 0, b["width"] + 50, b["height"], 0.7],
        ["00000.tar", f"{d['key']}.jpg", 1, 1, 35, 36, 0.6],
        ["00042.tar", "000420000.jpg", 0, 0, 10, 10, 0.5],
        ["00000.tar", "999999999.jpg", 0, 0, 10, 10, 0.5],
    ]
    return _write_csv(tmp_path / "boxes.csv", BOX_HEADER, rows), (a, b, d)


def test_csv_boxes_labels_captions(store, ingested, tmp_path):
    samples = ingested[1]
    boxes_csv, (a, b, d) = _boxes_csv(tmp_path, samples)
    report = import_annotations(store, boxes_csv, "boxes")
    imported = f"imported from boxes.csv sha256 {_sha(boxes_csv)}"

    boxes = store.read_table("person_boxes", SHARD)
    rows = _by_key(boxes)
    assert sorted(rows) == sorted(s["key"] for s in samples)  # every sample key accounted for
    assert set(boxes.column("model_fingerprint").to_pylist()) == {imported}
    assert set(boxes.column("model_name").to_pylist()) == {"imported"}
    [box_a] = rows[a["key"]]
    assert (box_a["box_id"], box_a["x1"], box_a["y2"], box_a["valid"], box_a["status"]) == (
        0, 2.0, a["height"] - 1, True, "ok")
    assert box_a["confidence"] == pytest.approx(0.9)
    [row_b] = rows[b["key"]]  # one box outside the image: the sample is an error, not half its persons
    assert row_b["status"] == "error" and "outside the image" in row_b["error"] and row_b["box_id"] is None
    others = [r for k, rs in rows.items() if k not in {a["key"], b["key"], d["key"]} for r in rs]
    assert all(r["box_id"] is None for r in others)
    assert {r["status"] for r in others} <= {"ok", "upstream_error"}

    reasons = {(r.row, r.reason) for r in report.rejected}
    assert (5, "unknown shard (not registered or no samples)") in reasons
    assert (6, "unknown sample key") in reasons
    saved = json.loads(open(report.report_path).read())
    assert saved["rejected_by_reason"] == {"unknown shard (not registered or no samples)": 1, "unknown sample key": 1}

    marker = store.read_marker("person_boxes", SHARD)
    recipe = Recipe.from_marker(marker)
    assert recipe.imported and recipe.models == {}
    assert recipe.settings["imported"]["sha256"] == _sha(boxes_csv)
    assert recipe.settings["imported"]["file"] == "boxes.csv"
    assert recipe.upstream == {"samples": store.read_marker("samples", SHARD)["data_version"]}
    assert marker["errors"] == 1 and marker["valid_persons"] == 2

    # Labels, as gender_labeling_classifier.py wrote them: integer coordinates, class names; one label unknown,
    # one box that person_boxes does not have. B has no valid box, so it keeps its error via the fallback row.
    labels_csv = _write_csv(tmp_path / "gender.csv", BOX_HEADER[:-1] + ["predicted_gender", "logit_male"], [
        ["00000.tar", f"{a['key']}.jpg", 2, 3, a["width"] - 2, a["height"] - 1, "female", "0.1"],
        ["00000.tar", f"{d['key']}.jpg", 1, 1, 35, 36, "robot", "0.2"],
        ["00000.tar", f"{a['key']}.jpg", 10, 10, 20, 20, "male", "0.3"],
    ])
    label_report = import_annotations(store, labels_csv, "labels", question="gender")
    labels = store.read_table("gender_labels", SHARD, restricted=True)
    label_rows = _by_key(labels)
    assert sorted(label_rows) == sorted(s["key"] for s in samples)
    assert [(r["box_id"], r["label"], r["status"]) for r in label_rows[a["key"]]] == [(0, "female", "ok")]
    [bad] = label_rows[d["key"]]
    assert (bad["box_id"], bad["label"], bad["status"]) == (0, None, "error") and "not one of" in bad["error"]
    assert label_rows[b["key"]][0]["status"] == "error"
    assert [(r.row, r.reason) for r in label_report.rejected] == [(3, "no matching valid box in person_boxes")]
    assert label_report.unknown_labels == {"robot": 1}
    label_recipe = Recipe.from_marker(store.read_marker("gender_labels", SHARD, restricted=True))
    assert label_recipe.upstream == {"person_boxes": marker["data_version"]}
    assert set(labels.column("model_fingerprint").to_pylist()) == {
        f"imported from gender.csv sha256 {_sha(labels_csv)}"}

    # Captions: D has none in the file, so its box gets an error row rather than no row.
    captions_csv = _write_csv(tmp_path / "captions.csv", BOX_HEADER[:-1] + ["caption"], [
        ["00000.tar", f"{a['key']}.jpg", 2, 3, a["width"] - 2, a["height"] - 1, "A person stands."]])
    import_annotations(store, captions_csv, "captions")
    caption_rows = _by_key(store.read_table("person_captions", SHARD, restricted=True))
    assert caption_rows[a["key"]][0]["caption"] == "A person stands."
    assert caption_rows[d["key"]][0]["status"] == "error"
    assert caption_rows[d["key"]][0]["error"] == "no caption for this box in the imported file"


def test_parquet_in_project_schema(store, ingested, tmp_path):
    samples = ingested[1]
    a, d = _with_images(samples, 2)
    boxes_file = tmp_path / "my_boxes.parquet"
    pq.write_table(pa.table({
        "shard": [SHARD, SHARD, SHARD], "key": [a["key"], d["key"], samples[-1]["key"]], "box_id": [0, 0, None],
        "x1": [0.0, 5.0, None], "y1": [0.0, 5.0, None], "x2": [35.0, 10.0, None], "y2": [40.0, 10.0, None],
        "confidence": [0.5, 0.4, None]}), boxes_file)
    report = import_annotations(store, boxes_file, "boxes")
    assert report.written == [SHARD] and report.sample_rows == 1 and not report.rejected
    rows = _by_key(store.read_table("person_boxes", SHARD))
    assert sorted(rows) == sorted(s["key"] for s in samples)
    assert rows[d["key"]][0]["valid"] is False  # 5 px wide: kept, not valid, as the detector's boxes are
    assert rows[a["key"]][0]["model_fingerprint"] == f"imported from my_boxes.parquet sha256 {_sha(boxes_file)}"

    race_file = tmp_path / "race.parquet"
    pq.write_table(pa.table({"shard": [SHARD, SHARD], "key": [a["key"], d["key"]], "box_id": [0, 0],
                             "label": ["south_asian", "south_asian"], "p_south_asian": [0.75, 0.5]}), race_file)
    race_report = import_annotations(store, race_file, "labels", question="race")
    race = _by_key(store.read_table("race_labels", SHARD, restricted=True))
    assert (race[a["key"]][0]["label"], race[a["key"]][0]["p_south_asian"]) == ("south_asian", 0.75)
    # D's only box is not valid: its label row has nowhere to go and is reported, D keeps "no_valid_person".
    assert [r.reason for r in race_report.rejected] == ["no matching valid box in person_boxes"]
    assert race[d["key"]][0]["status"] == "no_valid_person"


def test_second_import_is_idempotent_and_unknown_shards_are_reported(store, ingested, tmp_path):
    boxes_csv, _ = _boxes_csv(tmp_path, ingested[1])
    first = import_annotations(store, boxes_csv, "boxes")
    marker = store.read_marker("person_boxes", SHARD)
    second = import_annotations(store, boxes_csv, "boxes")
    assert first.written == [SHARD] and second.written == [] and second.skipped_complete == [SHARD]
    assert store.read_marker("person_boxes", SHARD) == marker
    assert second.to_dict()["rejected"] == first.to_dict()["rejected"]

    # Registered shards are checked when known: the shard Dagster does not know is rejected whole.
    third = import_annotations(store, boxes_csv, "boxes", registered={"00001"})
    assert third.written == [] and {r.reason for r in third.rejected} == {
        "unknown shard (not registered or no samples)"}


def test_a_normal_run_keeps_a_current_import(store, ingested, tmp_path):
    from laion_audit.defs.shard_runs import current_import
    from laion_audit.shards.lineage import code_version

    boxes_csv, _ = _boxes_csv(tmp_path, ingested[1])
    import_annotations(store, boxes_csv, "boxes")
    samples_version = store.read_marker("samples", SHARD)["data_version"]
    detector_recipe = Recipe("person_boxes", code_version("person_boxes"), {"detector": "f" * 64}, {"conf": 0.25},
                             {"samples": samples_version})
    assert current_import(store, detector_recipe, SHARD)["recipe"]["settings"]["imported"]["file"] == "boxes.csv"
    reingested = Recipe("person_boxes", code_version("person_boxes"), {"detector": "f" * 64}, {},
                        {"samples": "another-version"})
    assert current_import(store, reingested, SHARD) is None


def test_cli_import(store, ingested, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    boxes_csv, _ = _boxes_csv(tmp_path, ingested[1])
    assert main(["import", "boxes", str(boxes_csv), "--store", store.root]) == 0
    out = capsys.readouterr().out
    assert "1 shards written" in out and "unknown sample key" in out
    assert main(["import", "labels", str(boxes_csv), "--store", store.root]) == 2  # no --question
