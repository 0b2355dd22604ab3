"""The main job as a new user runs it: `laion-audit demo` end to end in a subprocess."""

import json
import os
import re
import stat
from pathlib import Path

import pytest

from laion_audit.shards.store import ShardStore


@pytest.fixture
def demo(demo_run):
    return demo_run


@pytest.mark.slow
def test_demo_materializes_every_sample_shard_and_summarizes(demo):
    workdir, result = demo
    output = result.stdout + result.stderr
    assert result.returncode == 0, output

    manifest = json.loads((workdir / "shards" / "manifest.json").read_text())
    store = ShardStore(str(workdir / "store"))
    summary = output[output.index("Summary"):]
    for shard in manifest["shards"]:
        marker = store.read_marker("samples", shard)
        assert marker is not None, shard
        line = next(line for line in summary.splitlines() if line.strip().startswith(shard))
        assert f"{marker['rows']}" in line and f"{marker['errors']}" in line

    bad_shard = next(iter(manifest["bad_samples"].values()))[:5]
    bad_line = next(line for line in summary.splitlines() if line.strip().startswith(bad_shard))
    for cause in ("corrupt_image", "truncated_image", "decompression_bomb", "missing_caption",
                  "non_utf8_caption", "missing_json", "malformed_json", "missing_image", "truncated_tar"):
        assert cause in bad_line, (cause, bad_line)
    assert "tar ends" in summary

    # The runs are in the demo's SQLite DAGSTER_HOME, where `dagster dev` will find them.
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(workdir / "dagster_home")) as instance:
        assert instance.get_materialized_partitions(AssetKey("samples")) == set(manifest["shards"])
    table = ShardStore(str(workdir / "store")).read_table("samples", bad_shard)
    assert table.num_rows == len(set(table.column("key").to_pylist()))


K = 10
COUNT_FIELDS = ("n_samples", "n", "n_eff", "hits", "negative_hits")


def _labelled_keys(store: ShardStore) -> set[str]:
    keys = set()
    for asset in ("gender_labels", "race_labels"):
        for shard in store.complete_shards(asset, restricted=True):
            rows = store.read_table(asset, shard, restricted=True, columns=["key", "box_id", "label"]).to_pylist()
            keys |= {r["key"] for r in rows if r["box_id"] is not None and r["label"] is not None}
    return keys


def _published_texts(workdir: Path):
    """Everything outside restricted storage that a person can read: event log, compute logs, reports, model
    files (training_record.json is owner-only and restricted by design)."""
    from dagster import DagsterInstance
    from dagster._serdes import serialize_value

    with DagsterInstance.from_config(str(workdir / "dagster_home")) as instance:
        for run in instance.get_runs():
            for entry in instance.all_logs(run.run_id):
                yield f"event log of run {run.run_id}", serialize_value(entry)
    for root in (workdir / "dagster_home" / "storage", workdir / "store" / "reports", workdir / "trained_models"):
        for path in root.rglob("*"):
            if path.is_file() and path.name != "training_record.json" and path.suffix not in (".safetensors", ".db"):
                yield str(path), path.read_text(errors="replace")


def _counts(value, path=""):
    """(path, number) for every count-like field in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in COUNT_FIELDS and isinstance(item, (int, float)) and not isinstance(item, bool):
                yield f"{path}.{key}", item
            else:
                yield from _counts(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _counts(item, f"{path}[{i}]")


@pytest.mark.slow
def test_no_row_level_label_and_no_small_cell_leaves_restricted_storage(demo):
    workdir, result = demo
    assert result.returncode == 0, result.stdout + result.stderr
    store = ShardStore(str(workdir / "store"))
    keys = _labelled_keys(store)
    assert len(keys) > 20
    pattern = re.compile("|".join(sorted(keys)))
    scanned = 0
    for where, text in _published_texts(workdir):
        scanned += 1
        found = pattern.search(text)
        assert found is None, f"labelled sample {found.group(0)} appears in {where}"
    assert scanned > 50

    for report in ("crime_cooccurrence", "sentiment_by_group"):
        payload = json.loads((workdir / "store" / "reports" / f"{report}.json").read_text())
        tables = {k: v for k, v in payload.items() if k not in ("inputs", "settings")}
        for path, count in _counts(tables):
            if ".rates[" in path or ".sentiment[" in path or ".per_word[" in path:
                row = _row_at(tables, path)
                if row.get("group") == "baseline":
                    continue
            assert count == 0 or count >= K, f"{report}{path} = {count}"
    for meta in (workdir / "trained_models").rglob("classifier.json"):
        published = json.loads(meta.read_text())
        assert "splits" not in json.dumps(published) and "class_counts" not in json.dumps(published)
        for metrics in (published.get("val_metrics") or {}, published.get("test_metrics") or {}):
            for row in (metrics.get("confusion_matrix") or []):
                assert all(cell is None or cell == 0 or cell >= K for cell in row), meta
        assert stat.S_IMODE(os.stat(meta.parent / "training_record.json").st_mode) == 0o600


def _row_at(tables, path):
    """The table row (a dict) a count path like '.rates[3].hits' points into."""
    match = re.match(r"\.(\w+)\[(\d+)\]", path)
    return tables[match.group(1)][int(match.group(2))]


@pytest.mark.slow
def test_demo_output_is_quiet(demo):
    """Progress lines and the summary only: no runs of blank lines, no third-party warnings."""
    _, result = demo
    output = result.stdout + result.stderr
    assert "\n\n\n" not in output, output
    for noise in ("Warning:", "Ultralytics Settings", "pi-heif", "pillow_heif"):
        assert noise not in output, (noise, output)


@pytest.mark.slow
def test_demo_runs_the_facial_impression_and_threshold_audits(demo):
    workdir, result = demo
    assert "facial impression bias and CLIP 0.3-threshold audit" in result.stdout
    reports = workdir / "store" / "reports"
    bias = json.loads((reports / "facial_impression_bias.json").read_text())
    assert [m["family"] for m in bias["models"]] == ["tiny"] * 3 and bias["dataset"]["stimuli_analysed"] == 40
    audit = json.loads((reports / "clip_threshold_audit.json").read_text())
    (section,) = audit["by_version_set"].values()
    samples = sum(m["rows"] for m in ShardStore(str(workdir / "store")).complete_shards("samples").values())
    assert {row["samples"] for row in section["shares"]} == {samples}  # every sample accounted for, every model
    assert len(audit["probes"]) == 3 and audit["probes"][0]["probe"] == "astronaut"
