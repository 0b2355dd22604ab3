"""Lineage you can trust, on a real SQLite instance with the tiny models: settings, upstream data and shard files
are part of what makes an output complete; staleness is seen through the whole chain; failures that cannot heal
are not retried."""

import json
import re
import shutil

import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterEventType

from laion_audit.definitions import build_definitions
from laion_audit.ops.provenance import describe_sample, render
from laion_audit.ops.settings import Settings
from laion_audit.shards.store import ShardStore

from .dagster_harness import dagster_test_instance, register

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
SHARDS = ["00000", "00001"]


@pytest.fixture
def env(tmp_path, sample_shards, tiny_models):
    shards = tmp_path / "shards"
    shards.mkdir()
    for key in SHARDS:
        for path in sample_shards.glob(f"{key}*"):
            shutil.copy(path, shards)
    settings = Settings(home=str(tmp_path), shards_root=str(shards), store_root=str(tmp_path / "store"),
                        executor="in_process", model_profile="tiny", models_dir=str(tiny_models),
                        trained_dir=str(tmp_path / "trained"), settle_seconds=0)
    defs = build_definitions(settings)
    with dagster_test_instance() as instance:
        register(instance, SHARDS)

        def run(job, partition_key=None, ops=None, raise_on_error=True, **kwargs):
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, partition_key=partition_key, run_config={**QUIET, "ops": ops or {}},
                raise_on_error=raise_on_error, **kwargs)
            return result

        yield {"root": tmp_path, "shards": shards, "store": ShardStore(settings.store_root), "defs": defs,
               "instance": instance, "run": run, "settings": settings}


def _marker(env, asset, shard="00000", restricted=False):
    return env["store"].read_marker(asset, shard, restricted)


def _evaluations(result):
    return {e.event_specific_data.asset_key.to_user_string(): e.event_specific_data
            for e in result.all_events if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION}


def _checks(env):
    """{asset: (passed, stale shards)} from a run of lineage_checks_job."""
    evaluations = _evaluations(env["run"]("lineage_checks_job"))
    return {asset: (e.passed, set(e.metadata["stale_partitions"].value)) for asset, e in evaluations.items()}


def _passed(env):
    return {asset: passed for asset, (passed, _) in _checks(env).items()}


def test_a_settings_or_word_list_change_recomputes_alt_text_scores(env, tmp_path):
    env["run"]("shard_ingest_job", "00000")
    first = _marker(env, "alt_text_scores")
    samples_run = _marker(env, "samples")["run_id"]

    env["run"]("shard_ingest_job", "00000", ops={"alt_text_scores": {"config": {"negative_threshold": -0.5}}})
    second = _marker(env, "alt_text_scores")
    assert second["run_id"] != first["run_id"], "a new threshold must not be skipped as complete"
    assert second["recipe"]["settings"]["negative_threshold"] == -0.5
    assert _marker(env, "samples")["run_id"] == samples_run, "samples did not change and must be skipped"
    rows = env["store"].read_table("alt_text_scores", "00000").to_pylist()
    scored = [r for r in rows if r["status"] == "ok"]
    assert scored and all(r["negative"] == (r["vader_compound"] <= -0.5) for r in scored)

    # The same list name with other contents is another recipe; the expectation is a plain regex over captions.
    words = tmp_path / "my_words.txt"
    words.write_text("person\n")
    env["run"]("shard_ingest_job", "00000", ops={"alt_text_scores": {"config": {"crime_words": str(words)}}})
    captions = {r["key"]: r["caption"] for r in env["store"].read_table("samples", "00000").to_pylist()}
    expected = sum(bool(c and re.search(r"\bperson\b", c, re.IGNORECASE)) for c in captions.values())
    rows = env["store"].read_table("alt_text_scores", "00000").to_pylist()
    assert sum(r["crime_match"] for r in rows) == expected > 0
    words.write_text("beach\n")
    env["run"]("shard_ingest_job", "00000", ops={"alt_text_scores": {"config": {"crime_words": str(words)}}})
    expected = sum(bool(c and re.search(r"\bbeach\b", c, re.IGNORECASE)) for c in captions.values())
    rows = env["store"].read_table("alt_text_scores", "00000").to_pylist()
    assert sum(r["crime_match"] for r in rows) == expected


def test_a_detection_setting_change_recomputes_person_boxes(env):
    env["run"]("shard_ingest_job", "00000")
    env["run"]("person_detection_job", "00000")
    first = _marker(env, "person_boxes")
    env["run"]("person_detection_job", "00000", ops={"person_boxes": {"config": {"conf": 0.9, "min_side": 200}}})
    second = _marker(env, "person_boxes")
    assert second["run_id"] != first["run_id"]
    assert second["recipe"]["settings"]["conf"] == 0.9
    boxes = [r for r in env["store"].read_table("person_boxes", "00000").to_pylist() if r["box_id"] is not None]
    assert all(r["confidence"] >= 0.9 for r in boxes)
    assert all(r["valid"] == (min(r["x2"] - r["x1"], r["y2"] - r["y1"]) >= 200) for r in boxes)


def test_reingested_samples_make_scores_stale_and_a_rerun_recomputes_them(env):
    env["run"]("shard_ingest_job", "00000")
    assert all(_passed(env).values())  # missing partitions (boxes, labels...) are not stale
    scores_run = _marker(env, "alt_text_scores")["run_id"]
    # Re-ingest samples alone (forced): alt_text_scores now names a samples version that is gone.
    env["run"]("shard_ingest_job", "00000", ops={"samples": {"config": {"force": True}}},
               asset_selection=[AssetKey("samples")])
    evaluation = _evaluations(env["run"]("lineage_checks_job"))["alt_text_scores"]
    assert evaluation.passed is False
    reasons = evaluation.metadata["stale_partitions"].value["00000"]
    assert "samples was re-materialized" in " ".join(reasons)

    env["run"]("shard_ingest_job", "00000")  # no force: the recipe differs, so it recomputes
    assert _marker(env, "alt_text_scores")["run_id"] != scores_run
    assert _passed(env)["alt_text_scores"] is True


def test_laion_audit_stale_lists_and_recomputes_what_is_stale(env):
    from laion_audit.ops.stale import run_stale, stale_report

    env["run"]("shard_ingest_job", "00000")
    env["run"]("shard_ingest_job", "00000", ops={"samples": {"config": {"force": True}}},
               asset_selection=[AssetKey("samples")])
    lines: list[str] = []
    summary = stale_report(env["settings"], env["instance"], ["samples", "alt_text_scores"], lines.append)
    assert summary == {"samples": {"current": 1, "stale": 0, "missing": 1},
                       "alt_text_scores": {"current": 0, "stale": 1, "missing": 1}}
    assert any("00000: samples was re-materialized" in line for line in lines)
    stale_run = _marker(env, "alt_text_scores")["run_id"]
    assert run_stale(env["settings"], env["instance"], lines.append)
    assert _marker(env, "alt_text_scores")["run_id"] != stale_run
    summary = stale_report(env["settings"], env["instance"], ["alt_text_scores", "person_boxes"], lines.append)
    assert summary == {"alt_text_scores": {"current": 2, "stale": 0, "missing": 0},
                       "person_boxes": {"current": 2, "stale": 0, "missing": 0}}


def test_a_shard_copied_in_two_halves_ends_up_fully_ingested_without_force(env, sample_shards):
    tar = env["shards"] / "00001.tar"
    data = (sample_shards / "00001.tar").read_bytes()
    expected = sum(1 for name in _tar_members(sample_shards / "00001.tar") if name.endswith(".json"))
    tar.write_bytes(data[: len(data) // 2])
    env["run"]("shard_ingest_job", "00001")
    half = _marker(env, "samples", "00001")
    # The img2dataset sidecar beside it lists every key: the ones the half tar lacks are rows saying so.
    assert half["read_samples"] < expected and half["ended_early"] and half["missing_from_tar"] > 0
    tar.write_bytes(data)
    env["run"]("shard_ingest_job", "00001")
    marker = _marker(env, "samples", "00001")
    assert marker["rows"] == marker["read_samples"] == expected and not marker["truncated"]
    assert marker["missing_from_tar"] == 0


def _tar_members(path):
    import tarfile

    with tarfile.open(path) as archive:
        return archive.getnames()


def test_a_missing_input_file_fails_once_without_retries(env):
    env["run"]("shard_ingest_job", "00000")
    (env["shards"] / "00000.tar").unlink()
    result = env["run"]("person_detection_job", "00000", raise_on_error=False,
                        asset_selection=[AssetKey("person_boxes")])
    assert not result.success
    types = [e.event_type for e in result.all_events]
    assert types.count(DagsterEventType.STEP_START) == 1
    assert DagsterEventType.STEP_UP_FOR_RETRY not in types
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert "no input file for shard 00000" in failure.event_specific_data.error.message


def test_a_multi_shard_run_materializes_the_good_shards_and_names_the_bad_one(env):
    env["run"]("shard_ingest_job", tags={"dagster/asset_partition_range_start": "00000",
                                          "dagster/asset_partition_range_end": "00001"})
    (env["shards"] / "00001.tar").unlink()
    result = env["run"]("person_detection_job", raise_on_error=False, asset_selection=[AssetKey("person_boxes")],
                        tags={"dagster/asset_partition_range_start": "00000",
                              "dagster/asset_partition_range_end": "00001"})
    assert not result.success
    materialized = {e.partition: e.tags["dagster/data_version"]
                    for e in (ev.event_specific_data.materialization for ev in result.all_events
                              if ev.event_type == DagsterEventType.ASSET_MATERIALIZATION)}
    assert materialized == {"00000": _marker(env, "person_boxes")["data_version"]}
    assert env["instance"].get_materialized_partitions(AssetKey("person_boxes")) == {"00000"}


@pytest.fixture
def labelled(env):
    """Both shards through boxes, votes, classifiers and labels."""
    for shard in SHARDS:
        env["run"]("shard_ingest_job", shard)
        env["run"]("person_detection_job", shard)
    env["run"]("classifier_training_job")
    for shard in SHARDS:
        env["run"]("person_labels_job", shard)
    return env


def _person_key(env, shard="00000"):
    labels = env["store"].read_table("gender_labels", shard, restricted=True).to_pylist()
    return next(r["key"] for r in labels if r["box_id"] is not None)


def test_labels_on_replaced_boxes_fail_the_check_and_provenance_warns(labelled):
    env = labelled
    key = _person_key(env)
    sample, lines = describe_sample(env["store"], "00000", key)
    assert "WARNING" not in render("00000", key, sample, lines)
    assert all(_passed(env).values())

    env["run"]("person_detection_job", "00000", ops={"person_boxes": {"config": {"conf": 0.3}}},
               asset_selection=[AssetKey("person_boxes")])
    checks = _checks(env)
    assert checks["person_boxes"] == (True, set())
    for asset in ("gender_votes", "race_votes", "gender_labels", "race_labels", "person_captions"):
        assert checks[asset] == (False, {"00000"}), asset  # 00001 kept its boxes: its labels are current
    sample, lines = describe_sample(env["store"], "00000", key)
    text = render("00000", key, sample, lines)
    assert "WARNING: gender_labels computed from boxes" in text and "RANDOM WEIGHTS" in text
    assert "backbone" in text

    env["run"]("person_labels_job", "00000")
    checks = _passed(env)
    assert checks["gender_labels"] is True and checks["person_captions"] is True
    assert checks["gender_votes"] is False  # votes were not re-run: still on the old boxes


def test_a_dataset_table_over_mixed_classifier_versions_refuses(labelled):
    env = labelled
    env["run"]("classifier_training_job", ops={"gender_classifier": {"config": {"seed": 1}},
                                               "race_classifier": {"config": {"seed": 1}}})
    env["run"]("person_labels_job", "00001")  # 00000 keeps the labels of the first classifier
    labels = {shard: _marker(env, "gender_labels", shard, restricted=True)["models"]["gender_classifier"]
              for shard in SHARDS}
    assert labels["00000"] != labels["00001"]
    for shard in SHARDS:  # the tables sum these; each shard's counts inherit its labels' classifier
        env["run"]("group_counts_job", shard)
    result = env["run"]("audit_reports_job", raise_on_error=False, asset_selection=[AssetKey("crime_cooccurrence")])
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    message = failure.event_specific_data.error.message
    assert "gender_labels" in message and "00000" in message and "00001" in message
    assert labels["00000"][:12] in message and labels["00001"][:12] in message


def test_a_swapped_backbone_makes_the_classifier_and_its_labels_stale(tmp_path, tiny_models):
    from laion_audit.models.current import CurrentModels
    from laion_audit.models.image_classifier import META_FILE
    from laion_audit.models.registry import ModelRegistry

    trained = tmp_path / "trained" / "gender_classifier"
    (trained / "abc").mkdir(parents=True)
    (trained / "current.json").write_text(json.dumps({"fingerprint": "f" * 64, "folder": "abc"}))
    (trained / "abc" / META_FILE).write_text(json.dumps({"backbone_fingerprint": "0" * 64}))
    current = CurrentModels(ModelRegistry("tiny", tiny_models), tmp_path / "trained")
    assert current.fingerprint("gender_classifier") == "f" * 64
    assert "retrain it" in current.problems("gender_classifier")[0]
    staged = ModelRegistry("tiny", tiny_models).resolve("classifier_backbone").fingerprint
    (trained / "abc" / META_FILE).write_text(json.dumps({"backbone_fingerprint": staged}))
    assert CurrentModels(ModelRegistry("tiny", tiny_models), tmp_path / "trained").problems("gender_classifier") == []


def test_markers_and_footers_name_the_code(env):
    env["run"]("shard_ingest_job", "00000")
    marker = _marker(env, "samples")
    footer = ShardStore.read_provenance(env["store"].data_path("samples", "00000"))
    from importlib.metadata import version

    assert marker["package_version"] == footer["package_version"] == version("laion_audit")
    assert footer["recipe_sha256"] == marker["recipe_sha256"]
    run = env["instance"].get_run_by_id(marker["run_id"])
    assert run.tags["laion_audit/package_version"] == version("laion_audit")
    # Counts come from the rows.
    statuses = pq.read_table(env["store"].data_path("samples", "00000"), columns=["status"]).column(0).to_pylist()
    assert marker["errors"] == statuses.count("error")


def test_dagster_sees_a_settings_change_after_a_range_run(env):
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    env["run"]("shard_ingest_job", tags={"dagster/asset_partition_range_start": "00000",
                                          "dagster/asset_partition_range_end": "00001"})
    graph = env["defs"].resolve_asset_graph()

    def status(key, shard):
        return CachingStaleStatusResolver(env["instance"], graph, LoadingContextForTest(env["instance"])).get_status(
            AssetKey(key), shard)

    assert status("alt_text_scores", "00001") == StaleStatus.FRESH
    # Another setting, again as a range run: same code version and same shard files, yet other outputs.
    env["run"]("shard_ingest_job", ops={"samples": {"config": {"verify_images": "header"}}},
               asset_selection=[AssetKey("samples")],
               tags={"dagster/asset_partition_range_start": "00000", "dagster/asset_partition_range_end": "00001"})
    assert status("alt_text_scores", "00000") == StaleStatus.STALE
    assert status("alt_text_scores", "00001") == StaleStatus.STALE
