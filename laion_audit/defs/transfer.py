"""First-order bias transfer (Girrbach et al., spec §7): word–gender co-occurrence in the data, CLIP and Stable
Diffusion model bias, and the regressions of model bias on dataset bias. Wiring only; the work is in
audits/word_gender.py, audits/transfer_runs.py, stats/model_bias.py and stats/transfer_regression.py.

* `word_gender_counts` (per shard, restricted) -> `word_gender_cooccurrence` (dataset table, cells < k hidden).
* `clip_model_bias` (one partition per CLIP model): zero-shot word embeddings vs the chain's labelled person crops.
* `sd_model_bias` (one partition per SD model, GPU): generated images, the keep rule, the chain's classifier.
* `bias_transfer_regression`: OLS per model × word list × image set, beside the paper's R² and r.
"""


import hashlib
import json
from typing import Any, Literal

import polars as pl
from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetSelection,
    BackfillPolicy,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
    in_process_executor,
)

from laion_audit.annotation.schemas import GENDER_CLASSES
from laion_audit.audits.group_tables import markdown_table
from laion_audit.audits.report_inputs import (
    MixedVersionsError,
    complete_inputs,
    manifest_hash,
    marked_frames,
    version_set_groups,
    write_report,
)
from laion_audit.audits.transfer_inputs import (
    DEFAULT_LIST,
    read_model_report,
    read_report,
    recipe_sha256,
    transfer_word_lists,
    word_lists_setting,
    write_model_report,
)
from laion_audit.audits.word_gender import dataset_bias, reduce_counts, word_gender_counts
from laion_audit.defs.gpu import GPU_POOL, GPU_RETRY_POLICY, gpu_op_tags
from laion_audit.defs.models import CLIP_WEIGHTS, SD_WEIGHTS, ModelsResource, weights_key
from laion_audit.defs.partitions import clip_model_partitions, sd_model_partitions, shard_partitions
from laion_audit.defs.resources import ShardInputsResource, ShardStoreResource
from laion_audit.defs.run_config import CheckedConfig, out_of_range
from laion_audit.defs.shard_counts import counts_recipe, upstream_markers
from laion_audit.defs.shard_runs import UpstreamNotReadyError, materialize_shards, read_upstream, write_shard
from laion_audit.models.registry import clip_roles, profile_default, sd_roles
from laion_audit.ops.code_identity import code_identity_tags
from laion_audit.ops.settings import Settings
from laion_audit.shards.lineage import code_version, is_restricted
from laion_audit.stats.group_statistics import markdown_image

WORD_GENDER_COUNTS = "word_gender_counts"
WORD_GENDER_COOCCURRENCE = "word_gender_cooccurrence"
CLIP_MODEL_BIAS = "clip_model_bias"
SD_MODEL_BIAS = "sd_model_bias"
REGRESSION = "bias_transfer_regression"
COUNT_INPUTS = ("samples", "gender_labels")
K_MIN = 10


class WordListsConfig(CheckedConfig):
    # {name: shipped list name or path} of the lists written for this project (or your own of that shape).
    word_lists: dict[str, str] = {DEFAULT_LIST: DEFAULT_LIST}
    # Your copies of the third-party lists (not shipped): So-B-IT as JSON {category: [words]} or the .py file that
    # defines sobit_taxonomy (used as the union of its categories); Guilbeault et al., one term per line.
    sobit_path: str | None = None
    guilbeault_path: str | None = None

    def lists(self) -> dict[str, list[str]]:
        try:
            return transfer_word_lists(self.word_lists, self.sobit_path, self.guilbeault_path)
        except (OSError, ValueError) as exc:
            raise Failure(description=f"word lists: {exc}", allow_retries=False) from exc


class WordGenderCountsConfig(WordListsConfig):
    force: bool = False


class CooccurrenceConfig(CheckedConfig):
    attribution: Literal["sample", "person"] = "sample"
    min_count: float = 100  # the paper keeps words with n_f + n_m >= 100
    k_min: int = K_MIN
    mixed_versions: Literal["refuse", "per_version_set"] = "refuse"

    def problems(self) -> list[str]:
        return out_of_range("min_count", self.min_count, 0, low_open=True) + out_of_range("k_min", self.k_min, 1)


class ClipBiasConfig(WordListsConfig):
    k_min: int = K_MIN
    batch_size: int = 64
    force: bool = False

    def problems(self) -> list[str]:
        return out_of_range("k_min", self.k_min, 1) + out_of_range("batch_size", self.batch_size, 1)


class SdBiasConfig(CheckedConfig):
    word_list: str = DEFAULT_LIST  # shipped name or path: the categories prompted, "a photo of a/an <category>"
    categories: list[str] | None = None  # explicit categories instead of the list
    max_categories: int | None = None  # the first N categories (None: all)
    images_per_prompt: int | None = None  # one seed each, seed_start.. ; None: the profile's (paper 100, tiny 12)
    seed_start: int = 0
    steps: int | None = None  # None: the profile's (paper: the pipeline's default, 50; tiny: 2)
    size: int | None = None  # None: the profile's (paper: the model's 512 px; tiny: 64)
    min_kept: int | None = None  # prompts with fewer kept female/male images are skipped; None: profile (paper 50)
    min_confidence: float = 0.35  # a person box counts with confidence strictly above this ...
    min_side: float = 30.0  # ... and min(w, h) strictly above this many pixels
    max_det: int | None = None  # detector's box cap; None: the profile's (paper: 300, ultralytics' default)
    batch_size: int = 8
    force: bool = False

    def problems(self) -> list[str]:
        return (out_of_range("images_per_prompt", self.images_per_prompt, 1) + out_of_range("steps", self.steps, 1)
                + out_of_range("size", self.size, 8) + out_of_range("min_kept", self.min_kept, 1)
                + out_of_range("max_categories", self.max_categories, 1) + out_of_range("batch_size", self.batch_size, 1)
                + out_of_range("min_confidence", self.min_confidence, 0, 1) + out_of_range("max_det", self.max_det, 1))


class RegressionConfig(CheckedConfig):
    alpha: float = 0.05

    def problems(self) -> list[str]:
        return out_of_range("alpha", self.alpha, 0, 1, low_open=True)


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _word_gender_counts(settings: Settings):
    @asset(
        name=WORD_GENDER_COUNTS,
        deps=list(COUNT_INPUTS),
        partitions_def=shard_partitions,
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=settings.max_partitions_per_run),
        code_version=code_version(WORD_GENDER_COUNTS),
        group_name="transfer",
        kinds={"parquet"},
        description="Per shard, attribution rule, word list, word and perceived gender (female/male): the number of "
        "samples whose alt-text contains the word (word-boundary match) and their attribution weight. The "
        "word-gender co-occurrence table is their sum. Restricted: per-shard cells are small demographic counts.",
    )
    def word_gender_counts_asset(context: AssetExecutionContext, config: WordGenderCountsConfig,
                                 shard_store: ShardStoreResource):
        config.check(WORD_GENDER_COUNTS)
        store = shard_store.store()
        lists = config.lists()
        settings_used = {"word_lists": word_lists_setting(lists)}

        def process(shard: str):
            markers = upstream_markers(store, COUNT_INPUTS, shard)
            recipe = counts_recipe(WORD_GENDER_COUNTS, markers, settings_used)

            def compute():
                samples = read_upstream(store, "samples", shard, markers["samples"]["data_version"])
                labels = read_upstream(store, "gender_labels", shard, markers["gender_labels"]["data_version"],
                                       is_restricted("gender_labels"))
                counts = word_gender_counts(pl.from_arrow(samples.select(["shard", "key", "caption", "status"])),
                                            pl.from_arrow(labels.select(["shard", "key", "box_id", "label", "status"])),
                                            lists)
                return counts.to_arrow(), {}

            return write_shard(context, store, shard, recipe, compute, restricted=True, force=config.force)

        yield from materialize_shards(context, process, shard_errors=(UpstreamNotReadyError,), totals=("rows",))

    return word_gender_counts_asset


BIAS_COLUMNS = ["word_list", "word", "bias", "female_share", "n_female", "n_male", "n_total", "counts_suppressed"]


@asset(
    name=WORD_GENDER_COOCCURRENCE,
    deps=[WORD_GENDER_COUNTS],
    code_version="word_gender_cooccurrence-1",
    group_name="reports",
    kinds={"json"},
    description="Dataset gender bias of each social-category word: (n_f - n_m) / (n_f + n_m) over alt-texts of "
    "samples attributed to perceived female / male persons, for words with n_f + n_m >= min_count (paper: 100). "
    "Counting and attribution rules printed with the table; counts below k hidden. Sum of every shard's "
    "word_gender_counts.",
)
def word_gender_cooccurrence(context: AssetExecutionContext, config: CooccurrenceConfig,
                             shard_store: ShardStoreResource) -> MaterializeResult:
    config.check(WORD_GENDER_COOCCURRENCE)
    store = shard_store.store()
    manifest, markers = complete_inputs(store, [(WORD_GENDER_COUNTS, True)])
    if not manifest[WORD_GENDER_COUNTS]:
        raise Failure(description="no shard has word_gender_counts complete (they need samples and gender_labels)")
    try:
        groups = version_set_groups(manifest, config.mixed_versions)
    except MixedVersionsError as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    sections, payload_groups, published = [], {}, 0
    for label, group in groups:
        chosen = {shard: markers[WORD_GENDER_COUNTS][shard] for shard in group[WORD_GENDER_COUNTS]}
        counts = reduce_counts(marked_frames(store, WORD_GENDER_COUNTS, True, chosen))
        result = dataset_bias(counts, rule=config.attribution, min_count=config.min_count, k_min=config.k_min)
        words = result["words"]
        published += words.height
        payload_groups[label] = {"words": words.to_dicts(), "below_min_count": result["below_min_count"],
                                 "inputs": group}
        heading = f"## Version set {label}\n\n" if len(groups) > 1 else ""
        sections.append(heading + markdown_table(words, BIAS_COLUMNS))
        settings = result["settings"]
    rules = "\n".join(f"- {rule}" for rule in settings["counting_rules"])
    markdown = (f"Attribution rule: {config.attribution}; min_count {config.min_count}; k {config.k_min}.\n\n"
                f"Counting rules:\n{rules}\n\n" + "\n\n".join(sections))
    payload = ({**next(iter(payload_groups.values()))} if len(groups) == 1
               else {"by_version_set": payload_groups, "inputs": manifest})
    json_path, _ = write_report(store, WORD_GENDER_COOCCURRENCE, {**payload, "settings": settings}, markdown)
    digest = manifest_hash({"manifest": manifest, "settings": settings})
    return MaterializeResult(
        metadata={"table": MetadataValue.md(markdown), "words_published": published,
                  "counting_rules": MetadataValue.json(settings["counting_rules"]), "attribution": config.attribution,
                  "min_count": config.min_count, "k_min": config.k_min, "json": MetadataValue.path(json_path),
                  "inputs_sha256": digest[:16]},
        data_version=DataVersion(digest[:16]))


def _clip_model_bias(settings: Settings):
    @asset(
        name=CLIP_MODEL_BIAS,
        deps=[AssetDep(CLIP_WEIGHTS), AssetDep("gender_labels", partition_mapping=AllPartitionMapping()),
              AssetDep("person_boxes", partition_mapping=AllPartitionMapping())],
        partitions_def=clip_model_partitions(settings.model_profile),
        code_version="clip_model_bias-1",
        group_name="transfer",
        op_tags=gpu_op_tags(settings.gpu),
        pool=GPU_POOL,
        retry_policy=GPU_RETRY_POLICY,
        kinds={"pytorch", "json"},
        description="Per CLIP model: gender bias of each word = (mean cosine to female-labelled person crops - mean "
        "cosine to male-labelled crops) / σ of all cosines, with open_clip's zero-shot embedding of the word (7 "
        "SIMPLE_IMAGENET_TEMPLATES). Image set: the chain's perceived-gender labels (valid persons labelled female "
        "or male). Per-image embeddings stay in memory; only per-word biases over >= k images per gender are "
        "published.",
    )
    def clip_model_bias(context: AssetExecutionContext, config: ClipBiasConfig, shard_store: ShardStoreResource,
                        shard_inputs: ShardInputsResource, models: ModelsResource) -> MaterializeResult:
        from laion_audit.audits.transfer_runs import IMAGE_SET, clip_bias_rows, iter_labelled_crops, labelled_image_set

        config.check(CLIP_MODEL_BIAS)
        role = context.partition_key
        store = shard_store.store()
        lists = config.lists()
        embedder = models.clip(role)
        image_set = labelled_image_set(store)
        if not image_set.shards:
            raise Failure(description="no shard has gender_labels complete: run the labels first")
        recipe = {"asset": CLIP_MODEL_BIAS, "code_version": "clip_model_bias-1", "model": embedder.fingerprint,
                  "word_lists": word_lists_setting(lists), "k_min": config.k_min, "image_set": IMAGE_SET,
                  "gender_labels": image_set.versions(), "templates": "open_clip SIMPLE_IMAGENET_TEMPLATES"}
        digest = recipe_sha256(recipe)
        previous = read_model_report(store, CLIP_MODEL_BIAS, role)
        if previous and previous.get("recipe_sha256") == digest and not config.force:
            return MaterializeResult(metadata={"skipped_complete": True, "recipe_sha256": digest[:16]},
                                     data_version=DataVersion(previous["data_version"]))
        rows, summary = clip_bias_rows(embedder, iter_labelled_crops(store, shard_inputs.locate, image_set), lists,
                                       k_min=config.k_min, batch_size=config.batch_size)
        data_version = _digest({"recipe": digest, "rows": rows})[:24]
        payload = {"model": role, "model_name": embedder.name, "random_weights": embedder.random_weights,
                   "parameter_counts": embedder.parameter_counts(), "rows": rows, "summary": summary,
                   "recipe": recipe, "recipe_sha256": digest, "data_version": data_version,
                   "stale_label_shards_left_out": image_set.stale_shards,
                   "notes": "word embeddings: per-template L2-normalised, averaged, renormalised (open_clip); the "
                   "notebook's extra division of the text matrix along dim 1 (spec §7, c4 line 256) is not "
                   "reproduced; σ with ddof 0."}
        table = pl.DataFrame(rows, schema={"word_list": pl.String, "word": pl.String, "bias": pl.Float64,
                                           "image_set": pl.String, "suppressed": pl.Boolean})
        markdown = markdown_table(table, ["word_list", "word", "bias", "image_set", "suppressed"])
        json_path = write_model_report(store, CLIP_MODEL_BIAS, role, payload, markdown)
        return MaterializeResult(
            metadata={"published": summary["published"], "words": table.height, "k_min": config.k_min,
                      "sigma": MetadataValue.json(summary["sigma"]), "model": embedder.name,
                      "random_weights": embedder.random_weights, "json": MetadataValue.path(json_path),
                      "table": MetadataValue.md(markdown), "recipe_sha256": digest[:16],
                      **({"reason": summary["reason"]} if "reason" in summary else {})},
            data_version=DataVersion(data_version))

    return clip_model_bias


def _sd_model_bias(settings: Settings):
    @asset(
        name=SD_MODEL_BIAS,
        deps=[AssetDep(SD_WEIGHTS), "gender_classifier", weights_key("detector")],
        partitions_def=sd_model_partitions(settings.model_profile),
        code_version="sd_model_bias-1",
        group_name="transfer",
        op_tags=gpu_op_tags(settings.gpu),
        pool=GPU_POOL,
        retry_policy=GPU_RETRY_POLICY,
        kinds={"pytorch", "json"},
        description="Per Stable Diffusion model: images for \"a photo of a/an <category>\" (one seed each); an image "
        "is kept iff the chain's detector finds exactly one person box with confidence > 0.35 and min side > 30 "
        "px; the chain's gender classifier labels the kept box's crop; bias = female share of the kept female/"
        "male images, prompts below min_kept skipped. Images in the store named by prompt hash and seed; "
        "per-image labels in restricted storage.",
    )
    def sd_model_bias(context: AssetExecutionContext, config: SdBiasConfig, shard_store: ShardStoreResource,
                      models: ModelsResource) -> MaterializeResult:
        import pyarrow as pa
        import pyarrow.parquet as pq
        import io

        from laion_audit.annotation.classifiers import current_checkpoint
        from laion_audit.audits.transfer_runs import generate_and_label, image_name
        from laion_audit.audits.word_lists import load_word_list

        config.check(SD_MODEL_BIAS)
        role = context.partition_key
        store = shard_store.store()
        profile = models.profile
        steps = profile_default(profile, "sd_steps", config.steps)
        size = profile_default(profile, "sd_size", config.size)
        per_prompt = profile_default(profile, "sd_images_per_prompt", config.images_per_prompt)
        min_kept = profile_default(profile, "sd_min_kept", config.min_kept)
        categories = config.categories or load_word_list(config.word_list)
        categories = categories[:config.max_categories] if config.max_categories else categories
        seeds = list(range(config.seed_start, config.seed_start + per_prompt))
        generator = models.stable_diffusion(role)
        # Raw detections down to the lowest confidence the keep rule could count; the rule itself is applied after.
        max_det = profile_default(profile, "max_det", config.max_det)
        detector = models.detector(conf=min(0.25, config.min_confidence), iou=0.7, imgsz=640, max_det=max_det)
        folder, classifier_fp = current_checkpoint(models.trained_root("gender_classifier"))
        classifier = models.classifier(folder, classifier_fp, "gender_classifier")
        recipe = {"asset": SD_MODEL_BIAS, "code_version": "sd_model_bias-1",
                  "models": {role: generator.fingerprint, "detector": detector.fingerprint,
                             "gender_classifier": classifier_fp},
                  "categories": categories, "seeds": [seeds[0], seeds[-1]], "min_kept": min_kept,
                  "keep_rule": {"min_confidence_above": config.min_confidence, "min_side_above": config.min_side,
                                "exactly_one": True, "max_det": max_det},
                  "generation": generator.settings(steps, size)}
        digest = recipe_sha256(recipe)
        previous = read_model_report(store, SD_MODEL_BIAS, role)
        if previous and previous.get("recipe_sha256") == digest and not config.force:
            return MaterializeResult(metadata={"skipped_complete": True, "recipe_sha256": digest[:16]},
                                     data_version=DataVersion(previous["data_version"]))
        images_dir = store.output_dir(f"sd_images/{role}")

        def save(prompt: str, seed: int, image) -> str:
            path = f"{images_dir}/{image_name(prompt, seed)}"
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", pnginfo=_png_text({"prompt": prompt, "seed": str(seed),
                                                               "model": generator.name}))
            store.put_bytes(path, buffer.getvalue())
            return path

        image_rows, prompt_rows = generate_and_label(
            generator, detector, classifier, GENDER_CLASSES, categories, seeds, steps=steps, size=size,
            min_kept=min_kept, save=save, min_confidence=config.min_confidence, min_side=config.min_side,
            batch_size=config.batch_size)
        # Per-image labels: restricted, like every demographic label the pipeline writes.
        labels_path = f"{store.output_dir('sd_generations', restricted=True)}/{role}.parquet"
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(image_rows), buffer)
        store.put_bytes(labels_path, buffer.getvalue(), restricted=True)
        data_version = _digest({"recipe": digest, "prompts": prompt_rows})[:24]
        payload = {"model": role, "model_name": generator.name, "random_weights": generator.random_weights,
                   "prompts": prompt_rows, "recipe": recipe, "recipe_sha256": digest, "data_version": data_version,
                   "images_dir": images_dir,
                   "notes": "gender from the chain's trained classifier on the kept box's crop (the paper's script "
                   "asked InternVL3-2B about the full image; its labeller module is missing, spec §7)."}
        table = pl.DataFrame(prompt_rows)
        markdown = markdown_table(table, ["category", "generated", "kept", "labelled_female_or_male", "female_share",
                                          "skipped"])
        json_path = write_model_report(store, SD_MODEL_BIAS, role, payload, markdown)
        return MaterializeResult(
            metadata={"prompts": len(prompt_rows), "prompts_skipped": sum(r["skipped"] for r in prompt_rows),
                      "images": len(image_rows), "images_kept": sum(r["kept"] for r in image_rows),
                      "min_kept": min_kept, "model": generator.name, "random_weights": generator.random_weights,
                      "table": MetadataValue.md(markdown), "json": MetadataValue.path(json_path),
                      "images_dir": MetadataValue.path(images_dir), "recipe_sha256": digest[:16]},
            data_version=DataVersion(data_version))

    return sd_model_bias


def _png_text(values: dict[str, str]):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in values.items():
        info.add_text(key, value)
    return info


def _bias_transfer_regression(settings: Settings):
    profile = settings.model_profile

    @asset(
        name=REGRESSION,
        deps=[WORD_GENDER_COOCCURRENCE, AssetDep(CLIP_MODEL_BIAS, partition_mapping=AllPartitionMapping()),
              AssetDep(SD_MODEL_BIAS, partition_mapping=AllPartitionMapping())],
        code_version="bias_transfer_regression-1",
        group_name="reports",
        kinds={"json"},
        description="OLS of model bias on dataset bias for every model × word list × image set (CLIP: bias vs "
        "bias; SD: female share vs female share), with R², Pearson r, p-values, a Fisher-z CI for r and the OLS "
        "CI for the slope; scatter plots with fitted lines; summary beside the paper's R² 0.57-0.71, r 0.75-0.84.",
    )
    def bias_transfer_regression(context: AssetExecutionContext, config: RegressionConfig,
                                 shard_store: ShardStoreResource) -> MaterializeResult:
        from laion_audit.audits.transfer_regressions import regressions

        config.check(REGRESSION)
        store = shard_store.store()
        dataset = read_report(store, WORD_GENDER_COOCCURRENCE)
        if dataset is None or "words" not in dataset:
            raise Failure(description="word_gender_cooccurrence has no single-version table: materialize it first")
        clip = {role: read_model_report(store, CLIP_MODEL_BIAS, role) for role in clip_roles(profile)}
        sd = {role: read_model_report(store, SD_MODEL_BIAS, role) for role in sd_roles(profile)}
        result = regressions(dataset["words"], {r: p for r, p in clip.items() if p},
                             {r: p for r, p in sd.items() if p}, alpha=config.alpha)
        fits = pl.DataFrame(result["fits"], infer_schema_length=None)
        columns = ["family", "model", "word_list", "image_set", "n_words", "r2", "pearson_r", "pearson_ci_low",
                   "pearson_ci_high", "pearson_p", "slope", "slope_ci_low", "slope_ci_high", "slope_p", "reading",
                   "reason"]
        summary_md = markdown_table(pl.DataFrame(result["summary"]), list(result["summary"][0]))
        plots = "\n\n".join(markdown_image(png, title) for title, png in result["plots"])
        markdown = (f"{summary_md}\n\n{markdown_table(fits, columns) if fits.height else 'no fits'}\n\n{plots}")
        inputs = {"dataset": dataset.get("inputs"), "clip": {r: p["data_version"] for r, p in clip.items() if p},
                  "sd": {r: p["data_version"] for r, p in sd.items() if p}}
        json_path, _ = write_report(store, REGRESSION, {"fits": result["fits"], "summary": result["summary"],
                                                        "inputs": inputs, "alpha": config.alpha}, markdown)
        digest = _digest({"inputs": inputs, "alpha": config.alpha})
        return MaterializeResult(
            metadata={"summary": MetadataValue.md(summary_md),
                      "fits": MetadataValue.md(markdown_table(fits, columns) if fits.height else "no fits"),
                      "chart": MetadataValue.md(plots or "no fits to plot"),
                      "fitted": sum(f["r2"] is not None for f in result["fits"]), "json": MetadataValue.path(json_path)},
            data_version=DataVersion(digest[:16]))

    return bias_transfer_regression


def build_transfer_defs(settings: Settings):
    """(assets, jobs) of the bias-transfer analyses for the settings' model profile."""
    counts = _word_gender_counts(settings)
    clip_bias = _clip_model_bias(settings)
    sd_bias = _sd_model_bias(settings)
    regression = _bias_transfer_regression(settings)
    tags = code_identity_tags()
    jobs = [
        define_asset_job("word_gender_counts_job", selection=AssetSelection.assets(counts).without_checks(),
                         partitions_def=shard_partitions, executor_def=in_process_executor, tags=tags,
                         description="Per-shard word-gender counts once samples and gender labels exist."),
        define_asset_job("clip_model_bias_job", selection=AssetSelection.assets(clip_bias), tags=tags,
                         partitions_def=clip_model_partitions(settings.model_profile),
                         description="CLIP model bias, one CLIP model per partition."),
        define_asset_job("sd_model_bias_job", selection=AssetSelection.assets(sd_bias), tags=tags,
                         partitions_def=sd_model_partitions(settings.model_profile),
                         description="Stable Diffusion model bias, one SD model per partition (GPU)."),
        define_asset_job("bias_transfer_reports_job",
                         selection=AssetSelection.assets(word_gender_cooccurrence, regression), tags=tags,
                         description="Dataset word-gender bias and the transfer regressions."),
    ]
    return [counts, word_gender_cooccurrence, clip_bias, sd_bias, regression], jobs
