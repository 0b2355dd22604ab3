"""Both analyses end to end through Dagster with the tiny CLIPs: associations per model partition, the bias
report, per-shard similarity and the threshold audit with the astronaut probe."""

import dataclasses
import json

import pyarrow.parquet as pq
import pytest

from laion_audit.models.registry import clip_roles
from laion_audit.sample_data.impressions import write_impressions_dataset
from laion_audit.shards.store import ShardStore

from .dagster_harness import dagster_test_instance, register, settings_for
from .shard_fixtures import good_sample, write_tar

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
ROLES = clip_roles("tiny")


@pytest.fixture()
def setup(tmp_path, tiny_models):
    from laion_audit.definitions import build_definitions

    shards = tmp_path / "shards"
    shards.mkdir()
    samples = [good_sample(f"0000000{i}", caption=f"a photo of person number {i}") for i in range(5)]
    samples.append(good_sample("00000005", caption=""))
    write_tar(shards / "00000.tar", samples)
    omi = tmp_path / "omi"
    write_impressions_dataset(omi, 16, seed=1)
    (omi / "images" / "16.jpg").unlink()  # a rated stimulus without image: a recorded row
    settings = dataclasses.replace(settings_for(shards, tmp_path / "store"), models_dir=str(tiny_models),
                                   omi_dir=str(omi))
    return build_definitions(settings), tmp_path / "store", omi


def _run(defs, job, instance, partition=None, run_config=None):
    result = defs.resolve_job_def(job).execute_in_process(partition_key=partition, instance=instance,
                                                           run_config={**QUIET, **(run_config or {})},
                                                           raise_on_error=False)
    return result


def test_facial_impressions_through_dagster(setup):
    defs, store_root, omi = setup
    with dagster_test_instance() as instance:
        assert not _run(defs, "facial_impression_bias_job", instance).success  # nothing computed yet
        for role in ROLES:
            assert _run(defs, "facial_impression_associations_job", instance, role).success
        again = _run(defs, "facial_impression_associations_job", instance, ROLES[0])
        materialization = again.asset_materializations_for_node("facial_impression_associations")[0]
        assert materialization.metadata["skipped_complete"].value is True
        result = _run(defs, "facial_impression_bias_job", instance)
        assert result.success
    table = pq.read_table(store_root / "facial_impression_associations" / f"{ROLES[0]}.parquet").to_pylist()
    assert len(table) == 16 and [r["status"] for r in table].count("missing_image") == 1
    report = json.loads((store_root / "reports" / "facial_impression_bias.json").read_text())
    assert [m["role"] for m in report["models"]] == ROLES and report["models_missing"] == []
    assert len(report["similarity"]) == 3 * 34 and all(r["images"] == 15 for r in report["similarity"])
    assert report["irr_correlation"][0]["family"] == "tiny" and report["irr_correlation"][0]["attributes"] == 34
    assert report["dataset"]["stimuli_without_image"] == 1
    assert "coefficients" in report["regression"] and report["regression"]["n"] == 3 * 34
    assert len(report["human_structure"]["ward"]["leaf_order"]) == 34
    assert (store_root / "reports" / "facial_impression_bias" / "dendrogram_human.png").stat().st_size > 1000
    # Changing the ratings makes the stored associations refuse to mix with them.
    (omi / "images" / "3.jpg").write_bytes((omi / "images" / "4.jpg").read_bytes() + b"\0")
    with dagster_test_instance() as instance:
        refused = _run(defs, "facial_impression_bias_job", instance)
    assert not refused.success
    failure = next(e for e in refused.all_events if e.is_step_failure)
    assert "computed from another ratings dataset" in failure.step_failure_data.error.message


def test_threshold_audit_through_dagster(setup):
    defs, store_root, _ = setup
    with dagster_test_instance() as instance:
        register(instance, ["00000"])
        assert _run(defs, "shard_ingest_job", instance, "00000").success
        assert _run(defs, "clip_similarity_job", instance, "00000",
                    {"ops": {"clip_alt_text_similarity": {"config": {"loader_workers": 0, "batch_size": 2}}}}).success
        assert _run(defs, "clip_threshold_audit_job", instance).success
    rows = ShardStore(str(store_root)).read_table("clip_alt_text_similarity", "00000").to_pylist()
    assert len(rows) == 6 * 3  # every sample, under every model
    assert {r["key"] for r in rows if r["status"] == "no_caption"} == {"00000005"}
    assert all(-1 <= r["similarity"] <= 1 for r in rows if r["status"] == "ok")
    report = json.loads((store_root / "reports" / "clip_threshold_audit.json").read_text())
    (section,) = report["by_version_set"].values()
    shares = {row["model"]: row for row in section["shares"]}
    for role in ROLES:
        ok = [r["similarity"] for r in rows if r["model_role"] == role and r["status"] == "ok"]
        assert shares[role]["scored"] == len(ok) == 5
        assert shares[role]["kept"] == sum(s >= 0.3 for s in ok)
    assert len(section["crossings"]) == 3
    assert [(p["model"], p["probe"]) for p in report["probes"]] == [(role, "astronaut") for role in ROLES]
    assert all(p["kept_a"] == (p["similarity_a"] >= 0.3) for p in report["probes"])


def test_ratings_folder_must_be_configured(tmp_path, tiny_models):
    from laion_audit.definitions import build_definitions

    settings = dataclasses.replace(settings_for(tmp_path / "s", tmp_path / "store"), models_dir=str(tiny_models))
    defs = build_definitions(settings)
    with dagster_test_instance() as instance:
        result = _run(defs, "facial_impression_associations_job", instance, ROLES[0])
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "LAION_AUDIT_OMI_DIR" in failure.step_failure_data.error.message
