"""Alt-text assets on text-only shards, and the keyword audit over a user's LAION metadata folder through the
normal sensor path."""

import json
import shutil

import pyarrow.parquet as pq
from dagster import AssetKey

from laion_audit.shards.store import ShardStore

from .dagster_harness import dagster_test_instance, definitions, registered_by, tick_discovery

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _through_the_sensor(shards, store_root, instance):
    return registered_by(tick_discovery(instance, shards, store_root))


def test_scores_run_on_a_metadata_only_shard(tmp_path, sample_shards):
    manifest = json.loads((sample_shards / "manifest.json").read_text())
    key, info = next((k, v) for k, v in manifest["shards"].items() if v["format"] == "metadata_parquet")
    shards = tmp_path / "shards"
    shards.mkdir()
    shutil.copy(sample_shards / info["files"][0], shards)
    defs = definitions(shards, tmp_path / "store")
    with dagster_test_instance() as instance:
        assert _through_the_sensor(shards, tmp_path / "store", instance) == [key]
        assert defs.resolve_job_def("shard_ingest_job").execute_in_process(
            partition_key=key, instance=instance, run_config=QUIET).success
    scores = ShardStore(str(tmp_path / "store")).read_table("alt_text_scores", key).to_pylist()
    assert len(scores) == info["statistics"]["samples"]
    assert sum(r["status"] == "no_caption" for r in scores) == len(info["null_text_keys"])
    assert sum(r["crime_match"] for r in scores) == info["statistics"]["crime_word"]


def test_keyword_audit_on_a_users_laion_metadata_folder(tmp_path, shared_data):
    shards = tmp_path / "laion400m-meta"
    shards.mkdir()
    sample = shared_data / "laion_metadata_sample" / "laion400m_text_sample_1000.parquet"
    shutil.copy(sample, shards)
    store_root = tmp_path / "store"
    defs = definitions(shards, store_root)
    with dagster_test_instance() as instance:
        keys = _through_the_sensor(shards, store_root, instance)
        assert keys == ["01000"]
        assert defs.resolve_job_def("shard_ingest_job").execute_in_process(
            partition_key="01000", instance=instance, run_config=QUIET).success
        # Text-only data: the keyword audit alone (the group tables need person labels).
        result = defs.resolve_job_def("audit_reports_job").execute_in_process(
            instance=instance, run_config=QUIET, asset_selection=[AssetKey("keyword_audit")])
        assert result.success
    report = json.loads((store_root / "reports" / "keyword_audit.json").read_text())
    rows = pq.read_metadata(sample).num_rows
    assert set(report["result"]) == {"nsfw_keywords_birhane2021", "nsfw_keywords_birhane2021_uncensored"}
    assert report["inputs"]["keyword_counts"]["01000"]["code_version"] == "keyword_counts-1"
    for result in report["result"].values():
        assert result["n_rows"] == rows
        modes = result["modes"]
        for term in ("desi", "nun", "latina"):
            assert (modes["substring"]["search_strings"][term]["n_match"]
                    >= modes["word"]["search_strings"][term]["n_match"])
    # The printed list searches the literal "f*ck", the uncensored one "fuck"; count both by hand on the captions.
    captions = [c.lower() for c in pq.read_table(sample).column(
        next(n for n in pq.read_schema(sample).names if n.lower() == "text")).to_pylist() if c]
    printed = report["result"]["nsfw_keywords_birhane2021"]["modes"]["substring"]["keyword_rows"]["text"]
    uncensored = report["result"]["nsfw_keywords_birhane2021_uncensored"]["modes"]["substring"]["keyword_rows"]["text"]
    assert printed["f*ck"] == sum("f*ck" in c for c in captions)
    assert uncensored["fuck"] == sum("fuck" in c for c in captions)
    assert printed["porn"] == uncensored["porn"] == sum("porn" in c for c in captions)
    assert (store_root / "reports" / "keyword_audit.md").read_text().count("|") > 10
