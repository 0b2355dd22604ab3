"""caption_embeddings, sae_dictionaries and identity_topic_pmi on the sample shards with the tiny profile, through
the real Dagster jobs on a real (SQLite) instance."""

import json
import shutil
import stat
from pathlib import Path

import pytest
from dagster import AssetKey

from laion_audit.definitions import build_definitions
from laion_audit.ops.settings import Settings
from laion_audit.shards.store import ShardStore
from laion_audit.topics.identity_counts import IDENTITIES

from .dagster_harness import dagster_test_instance, register

SHARDS = ["00000", "00001", "00003", "00004"]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# The worktree's own list (the shipped-name lookup reads the installed package's lexical_data).
TOPIC_LABELS = str(Path(__file__).parents[1] / "lexical_data" / "topic_labels.txt")
SMALL_SAES = {"seeds": 1, "k_values": [4], "expansions": [2], "steps": 30, "batch_size": 32}


def topics_config(k_min: int) -> dict:
    return {**QUIET, "ops": {"sae_dictionaries": {"config": SMALL_SAES},
                             "identity_topic_pmi": {"config": {"k_min": k_min, "top_n_captions": 10,
                                                                      "topic_labels": TOPIC_LABELS}}}}


@pytest.fixture(scope="module")
def topics(tmp_path_factory, sample_shards, tiny_models):
    root = tmp_path_factory.mktemp("topics")
    shutil.copytree(sample_shards, root / "shards")
    shutil.copytree(tiny_models, root / "models")
    settings = Settings(home=str(root), shards_root=str(root / "shards"), store_root=str(root / "store"),
                        executor="in_process", register_batch=100, max_partitions_per_run=8, model_profile="tiny",
                        models_dir=str(root / "models"), trained_dir=str(root / "trained"))
    defs = build_definitions(settings)

    def run(job, partition_key=None, run_config=QUIET):
        result = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=partition_key,
                                                              run_config=run_config, raise_on_error=False)
        assert result.success, job
        return result

    with dagster_test_instance() as instance:
        register(instance, SHARDS)
        run("observe_model_weights_job")
        for shard in SHARDS:
            run("shard_ingest_job", shard)
            run("person_detection_job", shard)
        run("classifier_training_job")
        embedded = {}
        for shard in SHARDS:
            run("person_labels_job", shard)
            embedded[shard] = run("caption_embeddings_job", shard)
        topics_run = run("caption_topics_job", run_config=topics_config(k_min=1))
        yield {"root": root, "store": ShardStore(str(root / "store")), "run": run, "instance": instance, "defs": defs,
               "embedded": embedded, "topics_run": topics_run, "models": root / "models"}


def test_every_caption_row_gets_an_embedding_row_with_model_and_run(topics):
    store = topics["store"]
    manifest = json.loads((topics["models"] / "manifest.json").read_text())
    total_ok = 0
    for shard in SHARDS:
        captions = store.read_table("person_captions", shard, restricted=True)
        embeddings = store.read_table("caption_embeddings", shard, restricted=True)
        key = lambda t: sorted(zip(t["key"].to_pylist(), [b if b is not None else -1 for b in t["box_id"].to_pylist()]))
        assert key(embeddings) == key(captions)
        rows = embeddings.to_pylist()
        caption_status = {(r["key"], r["box_id"]): r["status"] for r in captions.to_pylist()}
        for row in rows:
            assert row["model_fingerprint"] == manifest["caption_embedder"]["fingerprint"]
            assert row["random_weights"] is True and row["run_id"]
            if caption_status[(row["key"], row["box_id"])] == "ok":
                assert row["status"] == "ok" and len(row["embedding"]) == 32
                total_ok += 1
            else:
                assert row["status"] == "upstream_error" and row["embedding"] is None and row["error"]
        marker = store.read_marker("caption_embeddings", shard, restricted=True)
        assert marker["recipe"]["models"]["caption_embedder"] == manifest["caption_embedder"]["fingerprint"]
        assert marker["recipe"]["settings"]["normalize_embeddings"] is False
        assert marker["recipe"]["upstream"]["person_captions"] == store.read_marker(
            "person_captions", shard, restricted=True)["data_version"]
    assert total_ok > 0


def test_embeddings_are_restricted_owner_only(topics):
    folder = Path(topics["store"].root) / "restricted" / "caption_embeddings"
    assert folder.is_dir() and not (Path(topics["store"].root) / "caption_embeddings").exists()
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0


def test_sae_training_asks_for_a_gpu_and_depends_on_the_embeddings(topics):
    graph = topics["defs"].resolve_asset_graph()
    node = graph.get(AssetKey("sae_dictionaries"))
    config = node.assets_def.op.tags["dagster-k8s/config"]
    config = json.loads(config) if isinstance(config, str) else config
    assert config["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert node.assets_def.op.pool == "gpu"
    assert AssetKey("caption_embeddings") in node.parent_keys
    assert {AssetKey("sae_dictionaries"), AssetKey("gender_labels"), AssetKey("race_labels"),
            AssetKey("caption_embedder_weights")} <= graph.get(AssetKey("identity_topic_pmi")).parent_keys
    assert AssetKey("person_captions") in graph.get(AssetKey("caption_embeddings")).parent_keys


def test_sae_dictionaries_publish_metrics_and_checkpoint_fingerprint(topics):
    instance = topics["instance"]
    event = instance.get_latest_materialization_event(AssetKey("sae_dictionaries"))
    metadata = event.asset_materialization.metadata
    assert metadata["saes"].value == 2  # topk + batch_topk, one seed
    for name in ("mean_mse", "mean_fraction_variance_explained", "mean_l0", "mean_dead_features"):
        assert name in metadata
    folder = Path(metadata["checkpoint"].value)
    current = json.loads((folder.parent / "current.json").read_text())
    from laion_audit.models.fingerprint import fingerprint_path

    assert fingerprint_path(folder) == current["fingerprint"]
    assert event.asset_materialization.tags["dagster/data_version"] == current["fingerprint"]
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0
    saes = json.loads((folder / "saes.json").read_text())["saes"]
    assert {s["architecture"] for s in saes} == {"topk", "batch_topk"}
    assert all(s["metrics"]["l0"] <= 4 + 1e-9 or s["architecture"] == "batch_topk" for s in saes)


def test_identity_topic_table_publishes_only_identities_with_k_persons(topics):
    store = topics["store"]
    report = json.loads(Path(store.reports_dir, "identity_topic_pmi.json").read_text())
    published = {row["identity"] for row in report["rows"]}
    assert published and published <= set(IDENTITIES)
    assert all(row["persons"] >= 1 for row in report["rows"])
    # k_min above any identity's size: everything suppressed, and no identity's count or score is published.
    topics["run"]("caption_topics_job", run_config=topics_config(k_min=100_000))
    report = json.loads(Path(store.reports_dir, "identity_topic_pmi.json").read_text())
    assert report["rows"] == [] and set(report["suppressed_identities"]) == set(IDENTITIES)
    markdown = Path(store.reports_dir, "identity_topic_pmi.md").read_text()
    assert "every identity suppressed" in markdown
