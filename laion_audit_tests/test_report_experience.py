"""Dataset reports as a user meets them: text-only data completes the report job, counts read as integers,
each report has its own data version, and the keyword audit covers the shards its config selects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType

from laion_audit.audits.report_display import display_cell
from laion_audit.audits.shard_selection import ShardSelectionError, parse_shard_selection
from laion_audit.sample_data.metadata_shard import metadata_shard_name, write_metadata_shard

from .dagster_harness import dagster_test_instance, definitions, register, tick_discovery
from .test_version_sets import NEW, count_groups, failure_description, write_group_inputs

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
ROWS = {"00000": 30, "00001": 50}
REPORTS = ("keyword_audit", "crime_cooccurrence", "sentiment_by_group")


def _materialization(instance, asset: str):
    return instance.get_latest_materialization_event(AssetKey(asset)).asset_materialization


def _data_version(instance, asset: str) -> str:
    return _materialization(instance, asset).tags["dagster/data_version"]


@pytest.fixture(scope="module")
def text_only(tmp_path_factory):
    """Two LAION metadata-parquet shards (no images, so no person labels), registered and ingested."""
    root = tmp_path_factory.mktemp("text_only")
    shards, store = root / "shards", root / "store"
    shards.mkdir()
    for key, rows in ROWS.items():
        write_metadata_shard(shards / metadata_shard_name(int(key)), int(key), rows, seed=int(key))
    defs = definitions(shards, store)
    with dagster_test_instance() as instance:
        tick_discovery(instance, shards, store)
        for key in ROWS:
            assert defs.resolve_job_def("shard_ingest_job").execute_in_process(
                partition_key=key, instance=instance, run_config=QUIET).success
        yield {"defs": defs, "instance": instance, "store": store, "shards": shards}


def _reports(env, run_config=None, raise_on_error=True, assets=None):
    return env["defs"].resolve_job_def("audit_reports_job").execute_in_process(
        instance=env["instance"], raise_on_error=raise_on_error, run_config={**QUIET, **(run_config or {})},
        asset_selection=[AssetKey(a) for a in assets] if assets else None)


def test_the_report_job_completes_on_shards_without_person_labels(text_only):
    result = _reports(text_only)
    assert result.success
    instance, reports = text_only["instance"], text_only["store"] / "reports"
    for name in ("crime_cooccurrence", "sentiment_by_group"):
        metadata = _materialization(instance, name).metadata
        assert metadata["status"].value == "no labelled shard"
        assert "No labelled shard" in metadata["report"].value
        assert json.loads((reports / f"{name}.json").read_text())["status"] == "no_labelled_shards"
        assert "No labelled shard" in (reports / f"{name}.md").read_text()
    audit = json.loads((reports / "keyword_audit.json").read_text())
    assert audit["result"]["nsfw_keywords_birhane2021"]["n_rows"] == sum(ROWS.values())
    # Three reports, three data versions: the two empty group tables do not share one.
    assert len({_data_version(instance, name) for name in REPORTS}) == 3


def test_keyword_audit_covers_the_selected_shards_and_records_them(text_only):
    instance, reports = text_only["instance"], text_only["store"] / "reports"

    def audit(shards: str, raise_on_error=True):
        return _reports(text_only, {"ops": {"keyword_audit": {"config": {"shards": shards}}}},
                        raise_on_error=raise_on_error, assets=["keyword_audit"])

    assert audit("1").success
    report = json.loads((reports / "keyword_audit.json").read_text())
    assert report["result"]["nsfw_keywords_birhane2021"]["n_rows"] == ROWS["00001"]
    assert report["selection"] == {"spec": "00001", "keys": ["00001"], "ranges": [], "shards": ["00001"]}
    assert set(report["inputs"]["keyword_counts"]) == {"00001"}
    assert _materialization(instance, "keyword_audit").metadata["shard_selection"].value == "00001"
    one_shard = _data_version(instance, "keyword_audit")

    assert audit("0-9").success
    report = json.loads((reports / "keyword_audit.json").read_text())
    assert report["selection"]["shards"] == ["00000", "00001"] and report["selection"]["ranges"] == [["00000", "00009"]]
    assert report["result"]["nsfw_keywords_birhane2021"]["n_rows"] == sum(ROWS.values())
    assert _data_version(instance, "keyword_audit") != one_shard

    # A named shard that was never ingested is refused, not skipped; so is a registered one inside a range.
    refused = audit("1, 7", raise_on_error=False)
    assert not refused.success and "00007" in failure_description(refused)
    register(instance, ["00005"])
    refused = audit("0-9", raise_on_error=False)
    assert not refused.success and "00005" in failure_description(refused)
    assert "keyword_counts" in failure_description(refused)
    bad = audit("zero", raise_on_error=False)
    assert not bad.success and "'zero' is not a shard number" in failure_description(bad)
    starts = [e for e in bad.all_events if e.event_type == DagsterEventType.STEP_START]
    assert len(starts) == 1  # not retried


def test_group_tables_print_counts_as_integers_and_have_their_own_data_versions(tmp_path):
    store = tmp_path / "store"
    write_group_inputs(store, "00000", [True, False], NEW)
    write_group_inputs(store, "00001", [True, True, True], NEW)
    count_groups(store, ["00000", "00001"])
    (tmp_path / "shards").mkdir()
    defs = definitions(tmp_path / "shards", store)
    job = defs.resolve_job_def("audit_reports_job")
    k1 = {"ops": {name: {"config": {"k_min": 1}} for name in ("crime_cooccurrence", "sentiment_by_group")}}
    with dagster_test_instance() as instance:
        assert job.execute_in_process(instance=instance, run_config={**QUIET, **k1},
                                      asset_selection=[AssetKey("crime_cooccurrence"),
                                                       AssetKey("sentiment_by_group")]).success
        crime = _materialization(instance, "crime_cooccurrence")
        sentiment = _materialization(instance, "sentiment_by_group")
        first = crime.tags["dagster/data_version"]
        assert first != sentiment.tags["dagster/data_version"]  # same group_counts read, different tables

        # 5 samples, one white man each; 4 alt-texts with a crime word, 4 negative (planted above).
        markdown = (store / "reports" / "crime_cooccurrence.md").read_text()
        baseline = next(line for line in markdown.splitlines() if line.startswith("| baseline |"))
        assert baseline.startswith("| baseline | 5 | 4 | 0.800 |"), baseline
        assert ".000 |" not in crime.metadata["table_markdown"].value.split("Δ 95% CI")[0].replace("0.000", "")
        table = crime.metadata["table"].records
        types = {column.name: column.type for column in crime.metadata["table"].schema.columns}
        assert types["n_samples"] == "int" and types["hits"] == "int" and types["rate"] == "float"
        row = next(record.data for record in table if record.data["group"] == "baseline")
        assert (row["n_samples"], row["hits"], row["rate"]) == (5, 4, 0.8)
        negative = next(r.data for r in sentiment.metadata["table"].records if r.data["group"] == "baseline")
        assert negative["n_samples"] == 5 and negative["negative_ratio"] == 0.8

        # Same inputs, another setting: the table changed, so does its data version.
        k2 = {"ops": {"crime_cooccurrence": {"config": {"k_min": 2}}}}
        assert job.execute_in_process(instance=instance, run_config={**QUIET, **k2},
                                      asset_selection=[AssetKey("crime_cooccurrence")]).success
        assert _materialization(instance, "crime_cooccurrence").tags["dagster/data_version"] != first


def test_every_dataset_report_sits_in_the_reports_group(text_only):
    graph = text_only["defs"].get_repository_def().asset_graph
    for name in REPORTS:
        assert graph.get(AssetKey(name)).group_name == "reports"


@pytest.mark.parametrize(("spec", "keys", "ranges"), [
    ("all", [], []), ("", [], []), ("3", ["00003"], []), (" 3, 00010 ", ["00003", "00010"], []),
    ("10-12, 1", ["00001"], [["00010", "00012"]]), ("00100..00199", [], [["00100", "00199"]]),
])
def test_shard_selection_reads_lists_and_ranges(spec, keys, ranges):
    record = parse_shard_selection(spec).record([])
    assert (record["keys"], record["ranges"]) == (keys, ranges)


def test_shard_selection_includes_and_asks_for():
    selection = parse_shard_selection("2, 10-12")
    assert [k for k in ("00001", "00002", "00010", "00011", "00012", "00013") if selection.includes(k)] == [
        "00002", "00010", "00011", "00012"]
    assert selection.unavailable(complete=["00002", "00010"], registered=["00010", "00011", "00020"]) == ["00011"]
    assert parse_shard_selection("all").unavailable(complete=[], registered=["00001"]) == []
    for bad in ("5-3", "1,,2", "a", "1-2-3"):
        with pytest.raises(ShardSelectionError):
            parse_shard_selection(bad)


@pytest.mark.parametrize(("column", "value", "shown"), [
    ("hits", 2.0, "2"), ("n_samples", 37.0, "37"), ("hits", 2.5, "2.500"), ("rate", 2.0, "2.000"),
    ("rate", 0.12345, "0.123"), ("hits", None, "–"), ("group", "female", "female"), ("n_samples", 5, "5"),
])
def test_counts_display_as_integers_and_rates_with_three_digits(column, value, shown):
    assert display_cell(column, value) == shown


def test_labels_without_group_counts_fail_and_say_what_to_run(tmp_path):
    store = tmp_path / "store"
    write_group_inputs(store, "00000", [True, False], NEW)  # labels and scores, but group_counts never ran
    (tmp_path / "shards").mkdir()
    job = definitions(tmp_path / "shards", store).resolve_job_def("audit_reports_job")
    with dagster_test_instance() as instance:
        result = job.execute_in_process(instance=instance, run_config=QUIET, raise_on_error=False,
                                        asset_selection=[AssetKey("sentiment_by_group")])
    assert not result.success
    assert "run group_counts_job" in failure_description(result)
