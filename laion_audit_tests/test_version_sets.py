"""Dataset tables read one version set per input: a mix is refused with an error naming shards and versions,
or, on request, reported per version set. Markers and tables are written by hand so the expectations do not
come from the code under test."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey

from laion_audit.audits.group_tables import crime_cooccurrence
from laion_audit.audits.report_inputs import (
    MixedVersionsError,
    input_manifest,
    require_single_version_set,
    split_by_version_set,
)
from laion_audit.shards.store import ShardStore

from .dagster_harness import dagster_test_instance, definitions, register
from .shard_fixtures import good_sample, write_tar

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
OLD, NEW = "0123456789abcdef", "fedcba9876543210"
HATE_OLD, HATE_NEW = "a" * 12 + "111111", "b" * 12 + "222222"


def write_marker(store_root: Path, asset: str, shard: str, version_set: str | None, *, code_version: str = "v1",
                 models: dict | None = None, restricted: bool = False) -> dict:
    directory = store_root / ("restricted" if restricted else "") / asset
    directory.mkdir(parents=True, exist_ok=True)
    marker = {"recipe": {"asset": asset, "code_version": code_version, "models": models or {}, "settings": {},
                         "upstream": {}},
              "recipe_sha256": "r" * 64, "data_sha256": f"data-{asset}-{shard}", "data_version": f"dv-{shard}",
              "code_version": code_version, "models": models or {}, "rows": 1, "errors": 0,
              "status_counts": {"ok": 1}}
    if version_set is not None:
        marker["version_set"] = version_set
    (directory / f"{shard}.complete.json").write_text(json.dumps(marker))
    return marker


def scores_manifest(tmp_path: Path, version_sets: dict[str, str | None]) -> dict:
    for shard, version_set in version_sets.items():
        models = {"hate_speech": HATE_NEW if version_set == NEW else HATE_OLD}
        code = "alt_text_scores-3" if version_set == NEW else "alt_text_scores-2"
        write_marker(tmp_path, "alt_text_scores", shard, version_set, code_version=code, models=models)
    return input_manifest(ShardStore(str(tmp_path)), [("alt_text_scores", False)])


def test_manifest_entries_carry_version_set_and_data_version(tmp_path):
    manifest = scores_manifest(tmp_path, {"00000": OLD})
    assert manifest == {"alt_text_scores": {"00000": {
        "data_sha256": "data-alt_text_scores-00000", "data_version": "dv-00000", "code_version": "alt_text_scores-2",
        "models": {"hate_speech": HATE_OLD}, "version_set": OLD}}}


def test_two_version_sets_are_refused_naming_versions_and_shards(tmp_path):
    manifest = scores_manifest(tmp_path, {"00000": OLD, "00001": NEW})
    with pytest.raises(MixedVersionsError) as caught:
        require_single_version_set(manifest)
    message = str(caught.value)
    assert "alt_text_scores has 2 version sets" in message
    old_line = next(line for line in message.splitlines() if OLD in line)
    new_line = next(line for line in message.splitlines() if NEW in line)
    assert "00000" in old_line and "alt_text_scores-2" in old_line and f"hate_speech={'a' * 12}" in old_line
    assert "00001" in new_line and "alt_text_scores-3" in new_line and f"hate_speech={'b' * 12}" in new_line
    assert "111111" not in message and "222222" not in message
    assert "mixed_versions: per_version_set" in message and "Re-materialize" in message


def test_many_shards_are_named_by_the_first_five_and_a_count(tmp_path):
    manifest = scores_manifest(tmp_path, {**{f"0000{i}": OLD for i in range(8)}, "00010": NEW})
    with pytest.raises(MixedVersionsError) as caught:
        require_single_version_set(manifest)
    old_line = next(line for line in str(caught.value).splitlines() if OLD in line)
    assert "8 shards: 00000, 00001, 00002, 00003, 00004, … (+3 more)" in old_line
    assert "00005" not in old_line


def test_a_marker_without_a_version_set_does_not_mix_silently(tmp_path):
    manifest = scores_manifest(tmp_path, {"00000": OLD, "00001": None})
    assert manifest["alt_text_scores"]["00001"]["version_set"].startswith("unrecorded")
    with pytest.raises(MixedVersionsError, match="unrecorded"):
        require_single_version_set(manifest)


def test_one_version_set_is_accepted(tmp_path):
    manifest = scores_manifest(tmp_path, {"00000": NEW, "00001": NEW, "00002": NEW})
    require_single_version_set(manifest)
    assert split_by_version_set(manifest) == [(f"alt_text_scores={NEW}", manifest)]


def test_split_groups_shards_by_their_combination_of_version_sets():
    def entry(version_set):
        return {"data_sha256": "x", "data_version": "y", "code_version": "c", "models": {},
                "version_set": version_set}

    manifest = {
        "samples": {"00000": entry("s1"), "00001": entry("s1"), "00002": entry("s2"), "00003": entry("s1")},
        "alt_text_scores": {"00000": entry("a1"), "00001": entry("a2"), "00002": entry("a1"), "00003": entry("a1")},
    }
    assert split_by_version_set(manifest) == [
        ("samples=s1; alt_text_scores=a1", {"samples": {"00000": entry("s1"), "00003": entry("s1")},
                                            "alt_text_scores": {"00000": entry("a1"), "00003": entry("a1")}}),
        ("samples=s1; alt_text_scores=a2", {"samples": {"00001": entry("s1")},
                                            "alt_text_scores": {"00001": entry("a2")}}),
        ("samples=s2; alt_text_scores=a1", {"samples": {"00002": entry("s2")},
                                            "alt_text_scores": {"00002": entry("a1")}}),
    ]


# --------------------------------------------------------------------------------------------- group tables
def write_group_inputs(store_root: Path, shard: str, crime: list[bool], scores_version: str) -> None:
    """One person (male, white) per sample; the given crime flags in alt_text_scores."""
    keys = [f"{shard}-{i}" for i in range(len(crime))]
    for asset, label in (("gender_labels", "male"), ("race_labels", "white")):
        write_marker(store_root, asset, shard, "1111111111111111", restricted=True)
        table = pa.table({"shard": [shard] * len(keys), "key": keys, "box_id": [0] * len(keys),
                          "label": [label] * len(keys), "status": ["ok"] * len(keys)})
        pq.write_table(table, store_root / "restricted" / asset / f"{shard}.parquet")
    write_marker(store_root, "alt_text_scores", shard, scores_version)
    scores = pa.table({"shard": [shard] * len(keys), "key": keys, "status": ["ok"] * len(keys), "crime_match": crime,
                       "crime_terms": [["thief"] if hit else [] for hit in crime], "negative": crime,
                       "vader_compound": [-0.5 if hit else 0.5 for hit in crime]})
    pq.write_table(scores, store_root / "alt_text_scores" / f"{shard}.parquet")


def count_groups(store_root: Path, shards: list[str]) -> None:
    """Materialize group_counts for ``shards`` through the real asset (the tables are sums of these)."""
    (store_root.parent / "no_shards").mkdir(exist_ok=True)
    job = definitions(store_root.parent / "no_shards", store_root).resolve_job_def("group_counts_job")
    with dagster_test_instance() as instance:
        register(instance, shards)
        for shard in shards:
            assert job.execute_in_process(partition_key=shard, instance=instance, run_config=QUIET).success


def scores_version_of(part: dict) -> str:
    """The alt_text_scores version set the group counts of a report section were made from (one per section)."""
    found = {entry["inputs"]["alt_text_scores"] for entry in part["manifest"]["group_counts"].values()}
    assert len(found) == 1
    return found.pop()


def baseline(rates) -> dict:
    return next(row for row in rates.to_dicts() if row["group"] == "baseline")


def test_group_tables_refuse_or_split_mixed_score_versions(tmp_path):
    write_group_inputs(tmp_path, "00000", [True, False], OLD)
    write_group_inputs(tmp_path, "00001", [True, True, True], NEW)
    count_groups(tmp_path, ["00000", "00001"])
    store = ShardStore(str(tmp_path))
    with pytest.raises(MixedVersionsError, match=OLD) as refused:
        crime_cooccurrence(store, k_min=1)
    assert "group_counts has 2 version sets" in str(refused.value) and NEW in str(refused.value)
    result = crime_cooccurrence(store, k_min=1, mixed_versions="per_version_set")
    assert "rates" not in result and result["settings"]["mixed_versions"] == "per_version_set"
    by_scores = {scores_version_of(part): part for part in result["by_version_set"].values()}
    assert set(by_scores) == {OLD, NEW}
    old, new = baseline(by_scores[OLD]["rates"]), baseline(by_scores[NEW]["rates"])
    assert (old["n_samples"], old["rate"]) == (2, 0.5)
    assert (new["n_samples"], new["rate"]) == (3, 1.0)
    assert set(by_scores[OLD]["manifest"]["group_counts"]) == {"00000"}
    assert set(result["manifest"]["group_counts"]) == {"00000", "00001"}


def test_group_tables_keep_their_single_table_shape_for_one_version_set(tmp_path):
    write_group_inputs(tmp_path, "00000", [True, False], NEW)
    write_group_inputs(tmp_path, "00001", [True, True, True], NEW)
    count_groups(tmp_path, ["00000", "00001"])
    for mode in ("refuse", "per_version_set"):
        result = crime_cooccurrence(ShardStore(str(tmp_path)), k_min=1, mixed_versions=mode)
        assert "by_version_set" not in result
        assert (baseline(result["rates"])["n_samples"], baseline(result["rates"])["hits"]) == (5, 4.0)


def test_group_report_asset_fails_on_a_mix_and_publishes_sections_per_version_set(tmp_path):
    store_root = tmp_path / "store"
    write_group_inputs(store_root, "00000", [True, False], OLD)
    write_group_inputs(store_root, "00001", [True, True, True], NEW)
    count_groups(store_root, ["00000", "00001"])
    (tmp_path / "shards").mkdir()
    defs = definitions(tmp_path / "shards", store_root)
    job = defs.resolve_job_def("audit_reports_job")
    with dagster_test_instance() as instance:
        refused = job.execute_in_process(instance=instance, asset_selection=[AssetKey("sentiment_by_group")],
                                         raise_on_error=False, run_config=QUIET)
        assert not refused.success
        assert OLD in failure_description(refused) and NEW in failure_description(refused)
        per_version_set = {"mixed_versions": "per_version_set", "k_min": 1}
        split = job.execute_in_process(
            instance=instance, asset_selection=[AssetKey("sentiment_by_group")],
            run_config={**QUIET, "ops": {"sentiment_by_group": {"config": per_version_set}}})
        assert split.success
    report = json.loads((store_root / "reports" / "sentiment_by_group.json").read_text())
    by_label = report["by_version_set"]
    assert len(by_label) == 2
    ratios = {next(iter(part["inputs"]["group_counts"])): next(r for r in part["sentiment"]
                                                                  if r["group"] == "baseline")["negative_ratio"]
              for part in by_label.values()}
    assert ratios == {"00000": 0.5, "00001": 1.0}
    markdown = (store_root / "reports" / "sentiment_by_group.md").read_text()
    assert markdown.count("## Version set") == 2 and OLD in markdown and NEW in markdown


# --------------------------------------------------------------------------------------------- keyword_audit
def failure_description(result) -> str:
    event = next(e for e in result.all_events if e.is_step_failure)
    return event.step_failure_data.user_failure_data.description


def test_keyword_audit_refuses_mixed_samples_versions_unless_asked_per_version_set(tmp_path):
    shards, store_root = tmp_path / "shards", tmp_path / "store"
    shards.mkdir()
    write_tar(shards / "00000.tar", [good_sample("000000000", "desi wedding"), good_sample("000000001", "a beach")])
    write_tar(shards / "00001.tar", [good_sample("000010000", "nun portrait"), good_sample("000010001", "desi food"),
                                     good_sample("000010002", "latina singer")])
    defs = definitions(shards, store_root)
    ingest, reports = defs.resolve_job_def("shard_ingest_job"), defs.resolve_job_def("audit_reports_job")
    header = {**QUIET, "ops": {"samples": {"config": {"verify_images": "header"}}}}
    with dagster_test_instance() as instance:
        register(instance, ["00000", "00001"])
        assert ingest.execute_in_process(partition_key="00000", instance=instance, run_config=QUIET).success
        assert ingest.execute_in_process(partition_key="00001", instance=instance, run_config=header).success
        markers = {shard: json.loads((store_root / "samples" / f"{shard}.complete.json").read_text())
                   for shard in ("00000", "00001")}
        decode, header_set = markers["00000"]["version_set"], markers["00001"]["version_set"]
        assert decode != header_set

        refused = reports.execute_in_process(instance=instance, asset_selection=[AssetKey("keyword_audit")],
                                             raise_on_error=False, run_config=QUIET)
        assert not refused.success
        message = failure_description(refused)
        assert "keyword_counts has 2 version sets" in message
        assert next(line for line in message.splitlines() if decode in line).endswith("1 shard: 00000")
        assert next(line for line in message.splitlines() if header_set in line).endswith("1 shard: 00001")
        assert not (store_root / "reports" / "keyword_audit.json").exists()

        split = reports.execute_in_process(
            instance=instance, asset_selection=[AssetKey("keyword_audit")],
            run_config={**QUIET, "ops": {"keyword_audit": {"config": {"mixed_versions": "per_version_set"}}}})
        assert split.success
        metadata = split.asset_materializations_for_node("keyword_audit")[0].metadata
        assert metadata["version_sets"].value == 2 and metadata["rows"].value == 5

    report = json.loads((store_root / "reports" / "keyword_audit.json").read_text())
    by_samples = {next(iter(part["inputs"]["keyword_counts"].values()))["inputs"]["samples"]: part
                  for part in report["by_version_set"].values()}
    assert set(by_samples) == {decode, header_set}
    first, second = by_samples[decode], by_samples[header_set]
    assert set(first["inputs"]["keyword_counts"]) == {"00000"} and set(second["inputs"]["keyword_counts"]) == {"00001"}
    for nsfw_list in ("nsfw_keywords_birhane2021", "nsfw_keywords_birhane2021_uncensored"):
        one, two = first["result"][nsfw_list], second["result"][nsfw_list]
        assert (one["n_rows"], two["n_rows"]) == (2, 3)
        counts = {term: (one["modes"]["word"]["search_strings"][term]["n_match"],
                         two["modes"]["word"]["search_strings"][term]["n_match"]) for term in ("desi", "nun", "latina")}
        assert counts == {"desi": (1, 1), "nun": (0, 1), "latina": (0, 1)}
    assert set(report["inputs"]["keyword_counts"]) == {"00000", "00001"}
    assert (store_root / "reports" / "keyword_audit.md").read_text().count("## Version set") == 2


def test_crime_table_shows_the_precision_of_the_review_that_filtered_the_scores(tmp_path):
    """A review (thief: 3 of 4 about crime; fraud: 1 of 2) recorded in the scores' recipe reaches the per-word
    table through group_counts; an edited review is refused rather than shown against the wrong scores."""
    import hashlib

    review = tmp_path / "review.csv"
    review.write_text("word,shard,key,caption,terms,is_crime\n" + "".join(
        f"{word},00000,k{i},c,{word},{answer}\n" for i, (word, answer) in enumerate(
            [("thief", "yes"), ("thief", "1"), ("thief", "no"), ("thief", "YES"), ("fraud", "no"), ("fraud", "y"),
             ("fraud", "")])))
    store_root = tmp_path / "store"
    write_group_inputs(store_root, "00000", [True, False, True], NEW)
    marker_path = store_root / "alt_text_scores" / "00000.complete.json"
    marker = json.loads(marker_path.read_text())
    marker["recipe"]["settings"]["crime_review"] = {"path": str(review),
                                                   "sha256": hashlib.sha256(review.read_bytes()).hexdigest()}
    marker_path.write_text(json.dumps(marker))
    count_groups(store_root, ["00000"])
    words = crime_cooccurrence(ShardStore(str(store_root)), k_min=1)["per_word"]
    thief = words.filter((words["group"] == "baseline") & (words["word"] == "thief")).row(0, named=True)
    assert (thief["reviewed"], thief["precision"]) == (4, 0.75)
    review.write_text(review.read_text().replace("fraud,00000,k4,c,fraud,no", "fraud,00000,k4,c,fraud,yes"))
    with pytest.raises(ValueError, match="changed since the scores were made"):
        crime_cooccurrence(ShardStore(str(store_root)), k_min=1)
