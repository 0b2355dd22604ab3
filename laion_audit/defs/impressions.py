"""Facial impression bias (per CLIP model, then across models) and the CLIP 0.3 similarity-threshold audit.

Wiring only; the work is in laion_audit/impressions/. `facial_impression_associations` is partitioned by CLIP
model (one partition per `clip_*` role, depending on that model's `clip_weights` partition);
`clip_alt_text_similarity` is a per-shard GPU asset scoring every sample with every CLIP of the profile; the two
dataset-level assets reduce them.
"""


import hashlib
from typing import Literal

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetSelection,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
)

from laion_audit.audits.report_inputs import (
    MixedVersionsError,
    complete_inputs,
    manifest_hash,
    marked_frames,
    version_set_groups,
    write_report,
)
from laion_audit.defs.gpu import GPU_POOL, GPU_RETRY_POLICY, gpu_backfill_policy, gpu_op_tags
from laion_audit.defs.models import CLIP_WEIGHTS, ModelsResource
from laion_audit.defs.partitions import clip_model_partitions, shard_partitions
from laion_audit.defs.resources import ShardInputsResource, ShardStoreResource
from laion_audit.defs.run_config import CheckedConfig, out_of_range
from laion_audit.defs.shard_runs import UpstreamNotReadyError, materialize_shards, read_upstream, upstream_version
from laion_audit.defs.shard_runs import write_shard
from laion_audit.models.registry import clip_roles
from laion_audit.ops.code_identity import code_identity_tags
from laion_audit.ops.settings import Settings
from laion_audit.shards.lineage import code_version
from laion_audit.shards.reader import ShardReadError
from laion_audit.shards.recipe import Recipe
from laion_audit.shards.sources import ShardNotFoundError

ASSOCIATIONS = "facial_impression_associations"
BIAS = "facial_impression_bias"
SIMILARITY = "clip_alt_text_similarity"
THRESHOLD_AUDIT = "clip_threshold_audit"
ASSOCIATIONS_CODE_VERSION = "facial_impression_associations-1"
SHARD_ERRORS = (UpstreamNotReadyError, ShardReadError, ShardNotFoundError)


class RatingsConfig(CheckedConfig):
    # Folder in the One Million Impressions layout; empty: Settings.omi_dir (LAION_AUDIT_OMI_DIR).
    ratings_dir: str = ""
    # Prompt table: the shipped one by file name, or a path to your own of the same shape.
    prompts: str = "facial_impression_prompts.csv"
    # True: a rated stimulus without an image, or an image without a rating, fails the run (default: reported).
    strict: bool = False


class AssociationsConfig(RatingsConfig):
    batch_size: int = 64
    force: bool = False

    def problems(self) -> list[str]:
        return out_of_range("batch_size", self.batch_size, 1)


class BiasConfig(RatingsConfig):
    human_irr: str = "facial_impression_human_irr.csv"


def _ratings(config: RatingsConfig, settings: Settings):
    from laion_audit.impressions.lexicon import load_prompt_pairs
    from laion_audit.impressions.ratings import RatingsDatasetError, load_ratings

    folder = config.ratings_dir or settings.omi_dir
    if not folder:
        raise Failure(description="no ratings folder: set LAION_AUDIT_OMI_DIR or the run config's ratings_dir to a "
                      "folder with attribute_means.csv and images/{stimulus}.jpg (One Million Impressions layout)",
                      allow_retries=False)
    pairs = load_prompt_pairs(config.prompts)
    try:
        return load_ratings(folder, [p.attribute for p in pairs], strict=config.strict), pairs
    except RatingsDatasetError as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc


def _associations_recipe(dataset, pairs, fingerprint: str) -> dict:
    from laion_audit.impressions.lexicon import prompts_sha256

    return {"asset": ASSOCIATIONS, "code_version": ASSOCIATIONS_CODE_VERSION, "model_fingerprint": fingerprint,
            "ratings_sha256": dataset.sha256, "prompts_sha256": prompts_sha256(pairs)}


def build_impressions_defs(settings: Settings):
    """(assets, jobs) of both analyses for the settings' model profile."""
    from laion_audit.impressions.model_outputs import ModelOutputs

    clip_partitions = clip_model_partitions(settings.model_profile)

    @asset(
        name=ASSOCIATIONS,
        deps=[AssetDep(CLIP_WEIGHTS)],
        partitions_def=clip_partitions,
        code_version=ASSOCIATIONS_CODE_VERSION,
        group_name="impressions",
        kinds={"pytorch", "parquet"},
        op_tags=gpu_op_tags(settings.gpu),
        pool=GPU_POOL,
        retry_policy=GPU_RETRY_POLICY,
        description="Per CLIP model, image and OMI attribute: m = cos(image, positive prompt) − cos(image, negative "
        "prompt) on raw embeddings in float64 (Wolfe et al. 2024). One row per rated stimulus; stimuli without an "
        "image or whose image does not decode are rows with a status.",
    )
    def facial_impression_associations(context: AssetExecutionContext, config: AssociationsConfig,
                                       shard_store: ShardStoreResource, models: ModelsResource) -> MaterializeResult:
        from laion_audit.impressions.associations import associations_table, compute_associations

        config.check(ASSOCIATIONS)
        role = context.partition_key
        dataset, pairs = _ratings(config, settings)
        resolved = models.resolve(role)
        outputs = ModelOutputs(shard_store.root, ASSOCIATIONS)
        recipe = _associations_recipe(dataset, pairs, resolved.fingerprint)
        record = None if config.force else outputs.complete(role, recipe)
        skipped = record is not None
        if record is None:
            clip = models.clip(role)
            result = compute_associations(clip, dataset, pairs, batch_size=config.batch_size)
            record = outputs.write(role, associations_table(result, clip), recipe, {
                "model": role, "model_name": clip.name, "random_weights": clip.random_weights,
                "parameters": clip.parameter_counts(), "scored": len(result.stimuli), "errors": len(result.errors),
                **dataset.problems_summary()})
        return MaterializeResult(
            metadata={"model": record["model_name"], "weights_sha256": resolved.fingerprint[:16],
                      "random_weights": record["random_weights"], "stimuli_scored": record["scored"],
                      "decode_errors": record["errors"], "stimuli_without_image": record["stimuli_without_image"],
                      "images_without_rating": record["images_without_rating"],
                      "image_mparams": round(record["parameters"]["image_mparams"], 3),
                      "text_mparams": round(record["parameters"]["text_mparams"], 3),
                      "skipped_complete": skipped, "ratings_sha256": dataset.sha256[:16]},
            data_version=DataVersion(record["data_version"]), tags=code_identity_tags())

    @asset(
        name=BIAS,
        deps=[AssetDep(ASSOCIATIONS, partition_mapping=AllPartitionMapping())],
        code_version="facial_impression_bias-1",
        group_name="reports",
        kinds={"json"},
        description="Across CLIP models: Spearman ρ between association and human mean rating per model and "
        "attribute (p-values); per model family, Spearman over attributes between mean ρ and the human IRR of "
        "Peterson et al.; OLS of ρ on IRR and scale (data, samples seen, image/text parameters); human and model "
        "34×34 correlation matrices, normalized Frobenius inner product, Ward dendrograms. Report and figures in "
        "<store>/reports.",
    )
    def facial_impression_bias(context: AssetExecutionContext, config: BiasConfig, shard_store: ShardStoreResource,
                               models: ModelsResource) -> MaterializeResult:
        from laion_audit.impressions.collect import collect_associations, write_figures
        from laion_audit.impressions.lexicon import load_human_irr, prompts_sha256
        from laion_audit.impressions.report import impression_bias, render
        from laion_audit.stats.group_statistics import markdown_image

        dataset, pairs = _ratings(config, settings)
        outputs = ModelOutputs(shard_store.root, ASSOCIATIONS)
        registry = models.registry()
        collected = collect_associations(outputs, [registry.entry(r) for r in clip_roles(settings.model_profile)],
                                         dataset, prompts_sha256(pairs))
        if collected.stale:
            raise Failure(description=f"associations of {', '.join(collected.stale)} were computed from another "
                          f"ratings dataset or prompt table; re-materialize those partitions of {ASSOCIATIONS}",
                          allow_retries=False)
        if not collected.found:
            raise Failure(description=f"no model has {ASSOCIATIONS} yet; materialize its partitions first",
                          allow_retries=False)
        irr = load_human_irr(config.human_irr)
        result = {**impression_bias(dataset, collected.found, irr), "models_missing": collected.missing}
        markdown, figures = render(result, link_prefix=f"{BIAS}/")
        store = shard_store.store()
        json_path, md_path = write_report(store, BIAS, result, markdown)
        write_figures(store.fs, f"{store.reports_dir}/{BIAS}", figures)
        summary = markdown.split("## Similarity per model and attribute")[0]
        digest = hashlib.sha256(repr((sorted(collected.data_versions.items()), dataset.sha256, config.model_dump(),
                                      irr)).encode()).hexdigest()
        return MaterializeResult(
            metadata={"summary": MetadataValue.md(summary),
                      "similarity_heatmap": MetadataValue.md(markdown_image(figures["similarity.png"], "similarity")),
                      "irr_scatter": MetadataValue.md(markdown_image(figures["irr.png"], "irr")),
                      "human_dendrogram": MetadataValue.md(markdown_image(figures["dendrogram_human.png"], "human")),
                      "irr_correlation": MetadataValue.json(result["irr_correlation"]),
                      "frobenius_with_human": MetadataValue.json(
                          {r: s["frobenius_with_human"] for r, s in result["model_structure"].items()}),
                      "models": len(collected.found), "models_missing": MetadataValue.json(collected.missing),
                      "report": MetadataValue.path(md_path), "json": MetadataValue.path(json_path)},
            data_version=DataVersion(digest[:16]))

    return [facial_impression_associations, facial_impression_bias, *_threshold_assets(settings)]


class SimilarityConfig(CheckedConfig):
    batch_size: int = 64
    loader_workers: int | None = None  # image-decoding processes; None: min(4, CPU count - 1); 0: in process
    force: bool = False

    def problems(self) -> list[str]:
        return out_of_range("batch_size", self.batch_size, 1) + out_of_range("loader_workers", self.loader_workers, 0)


class ThresholdAuditConfig(CheckedConfig):
    threshold: float = 0.3  # LAION-400M kept pairs with cosine >= 0.3 (OpenAI ViT-B/32)
    # JSON list of {"name", "image", "caption_a", "caption_b"}; empty: the astronaut probe of Birhane et al.
    probes: str = ""
    mixed_versions: Literal["refuse", "per_version_set"] = "refuse"

    def problems(self) -> list[str]:
        return out_of_range("threshold", self.threshold, -1, 1)


def _threshold_assets(settings: Settings):
    roles = clip_roles(settings.model_profile)

    @asset(
        name=SIMILARITY,
        deps=["samples", AssetDep(CLIP_WEIGHTS, partition_mapping=AllPartitionMapping())],
        code_version=code_version(SIMILARITY),
        group_name="impressions",
        partitions_def=shard_partitions,
        op_tags=gpu_op_tags(settings.gpu),
        pool=GPU_POOL,
        backfill_policy=gpu_backfill_policy(settings.gpu),
        retry_policy=GPU_RETRY_POLICY,
        kinds={"pytorch", "parquet"},
        description="Per shard, sample and CLIP model of the profile: cosine of the L2-normalised image and "
        "alt-text embeddings (the quantity LAION filtered at 0.3). Samples without image or alt-text are rows "
        "with a status.",
    )
    def clip_alt_text_similarity(context: AssetExecutionContext, config: SimilarityConfig,
                                 shard_store: ShardStoreResource, shard_inputs: ShardInputsResource,
                                 models: ModelsResource):
        from laion_audit.annotation.throughput import LoaderStats, default_workers
        from laion_audit.impressions.threshold import shard_similarities

        config.check(SIMILARITY)
        store = shard_store.store()
        clips = {role: models.clip(role) for role in roles}
        workers = default_workers() if config.loader_workers is None else config.loader_workers

        def process(shard: str):
            samples_version = upstream_version(store, "samples", shard)
            recipe = Recipe(SIMILARITY, code_version(SIMILARITY),
                            models={role: clip.fingerprint for role, clip in clips.items()},
                            upstream={"samples": samples_version})

            def compute():
                stats = LoaderStats()
                table = shard_similarities(shard_inputs.locate(shard),
                                           read_upstream(store, "samples", shard, samples_version), clips,
                                           batch_size=config.batch_size, workers=workers, stats=stats)
                return table, {"images_per_s": stats.as_metadata()["images_per_s"]}

            return write_shard(context, store, shard, recipe, compute, force=config.force)

        yield from materialize_shards(context, process, shard_errors=SHARD_ERRORS, totals=("rows", "errors"),
                                      single_shard_metadata=("images_per_s",),
                                      extra_metadata={"models": MetadataValue.json(roles)})

    @asset(
        name=THRESHOLD_AUDIT,
        deps=[SIMILARITY],
        code_version="clip_threshold_audit-1",
        group_name="reports",
        kinds={"json"},
        description="Share of scored samples on each side of the similarity threshold (default 0.3, LAION's "
        "filter) per CLIP model, samples that one model keeps and another drops, and counterfactual probes (one "
        "image, two captions: both similarities and whether the filter keeps each; default: the astronaut photo "
        "with Birhane et al.'s captions). Summed from every shard's clip_alt_text_similarity.",
    )
    def clip_threshold_audit(context: AssetExecutionContext, config: ThresholdAuditConfig,
                             shard_store: ShardStoreResource, models: ModelsResource) -> MaterializeResult:
        import polars as pl

        from laion_audit.impressions.plots import share_bars
        from laion_audit.impressions.threshold import astronaut_probe, load_probes, run_probes, threshold_audit
        from laion_audit.impressions.threshold_report import render_threshold_audit
        from laion_audit.stats.group_statistics import markdown_image

        config.check(THRESHOLD_AUDIT)
        store = shard_store.store()
        manifest, markers = complete_inputs(store, [(SIMILARITY, False)])
        if not manifest[SIMILARITY]:
            raise Failure(description=f"no shard has {SIMILARITY} complete yet", allow_retries=False)
        try:
            groups = version_set_groups(manifest, config.mixed_versions)
        except MixedVersionsError as exc:
            raise Failure(description=str(exc), allow_retries=False) from exc
        sections = {}
        for label, group in groups:
            chosen = {shard: markers[SIMILARITY][shard] for shard in group[SIMILARITY]}
            frames = marked_frames(store, SIMILARITY, False, chosen)
            frame = frames if isinstance(frames, pl.LazyFrame) else pl.concat(list(frames)).lazy()
            sections[label] = {**threshold_audit(frame, config.threshold), "inputs": group}
        probes = load_probes(config.probes) if config.probes else [astronaut_probe()]
        probe_rows = run_probes({role: models.clip(role) for role in roles}, probes, config.threshold)
        payload = {"by_version_set": sections, "probes": probe_rows, "threshold": config.threshold}
        markdown = render_threshold_audit(sections, probe_rows, config.threshold)
        json_path, md_path = write_report(store, THRESHOLD_AUDIT, payload, markdown)
        first = next(iter(sections.values()))
        digest = manifest_hash({"inputs": manifest, "probes": probe_rows, "threshold": config.threshold})
        return MaterializeResult(
            metadata={"report": MetadataValue.md(markdown),
                      "chart": MetadataValue.md(markdown_image(share_bars(first["shares"], config.threshold),
                                                               "shares")),
                      "threshold": config.threshold, "version_sets": len(sections),
                      "json": MetadataValue.path(json_path), "markdown": MetadataValue.path(md_path)},
            data_version=DataVersion(digest[:16]))

    return [clip_alt_text_similarity, clip_threshold_audit]


def build_impressions_jobs(settings: Settings):
    """Jobs: associations per CLIP model, per-shard similarity, and the two dataset-level reports."""
    return [
        define_asset_job("facial_impression_associations_job", selection=AssetSelection.assets(ASSOCIATIONS),
                         partitions_def=clip_model_partitions(settings.model_profile), tags=code_identity_tags(),
                         description="Associations of one CLIP model (partition) with the OMI attribute prompts."),
        define_asset_job("clip_similarity_job", selection=AssetSelection.assets(SIMILARITY).without_checks(),
                         partitions_def=shard_partitions, tags=code_identity_tags(),
                         description="Image–alt-text cosine of every sample of a shard under every CLIP model."),
        define_asset_job("facial_impression_bias_job", selection=AssetSelection.assets(BIAS),
                         tags=code_identity_tags(), description="The facial impression bias report across models."),
        define_asset_job("clip_threshold_audit_job", selection=AssetSelection.assets(THRESHOLD_AUDIT),
                         tags=code_identity_tags(), description="The CLIP similarity-threshold audit and probes."),
    ]
