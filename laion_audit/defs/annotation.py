"""Person annotation chain: boxes (YOLO11), ensemble votes, trained classifiers, labels, captions (InternVL3).

Wiring only; the work is in person_detection.py, person_annotation.py and classifier_models.py. Every GPU
step carries the `dagster-k8s/config` op tags, the `gpu` pool and a multi-shard backfill policy; every output
row names the model and weights fingerprint that produced it.

Each step decodes its shard's images in DataLoader workers (``loader_workers``) and reports per-batch throughput
(images/s, batches, seconds waiting for input vs in the model) per shard and for the run. Assets that read the
same images (gender and race votes; labels and captions) still decode them once each: sharing one decode would
need one op materializing several assets (a multi_asset), which keeps the asset keys but renames the op, so run
config (``ops.gender_votes.config``), per-asset settings and the per-asset `materialize_shards` results change;
and a decoded-pixel cache cannot cross steps, which the k8s executor runs in separate pods. The repeated decode
runs in the workers, overlapping the model, and is small next to an MLLM step.
"""

from pathlib import Path
from typing import Literal

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    DataVersion,
    Definitions,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
)

from laion_audit.annotation.schemas import GENDER_CLASSES, RACE_CLASSES
from laion_audit.annotation.classifiers import (
    NotEnoughConsensusError,
    consensus_examples,
    current_checkpoint,
    import_checkpoint,
    train_from_consensus,
)
from laion_audit.defs.gpu import GPU_POOL, GPU_RETRY_POLICY, gpu_backfill_policy, gpu_op_tags
from laion_audit.defs.models import MEMBER_ROLES, ModelsResource, weights_key
from laion_audit.defs.partitions import shard_partitions
from laion_audit.defs.run_config import CheckedConfig, out_of_range
from laion_audit.defs.resources import ShardInputsResource, ShardStoreResource
from laion_audit.defs.shard_runs import (
    UpstreamNotReadyError,
    materialize_shards,
    read_upstream,
    upstream_version,
    write_shard,
)
from laion_audit.annotation.person_annotation import caption_shard, label_shard, vote_shard
from laion_audit.annotation.vote_sample import SAMPLE_SCHEME
from laion_audit.annotation.vote_statistics import VoteTally, pooled
from laion_audit.annotation.detection import DEFAULT_MIN_SIDE, detect_shard
from laion_audit.annotation.throughput import LoaderStats, default_workers
from laion_audit.models.prompts import DEFAULT_CONSENSUS_RULE
from laion_audit.models.registry import profile_default
from laion_audit.ops.code_identity import code_identity_tags
from laion_audit.ops.settings import Settings
from laion_audit.shards.lineage import code_version
from laion_audit.shards.reader import ShardReadError
from laion_audit.shards.recipe import Recipe
from laion_audit.shards.sources import ShardNotFoundError

# Failures that no retry can heal: the shard fails at once, named, and the others go on.
SHARD_ERRORS = (UpstreamNotReadyError, ShardReadError, ShardNotFoundError)
BOXES = "person_boxes"
# Settings that change how fast a shard is computed, never its rows: left out of the recipe.
RESULT_NEUTRAL = {"force", "batch_size", "loader_workers"}
# Per-shard throughput fields, kept in the shard's marker and shown on its partition.
THROUGHPUT = ("images_per_s", "input_wait_s", "model_s")


def _workers(config) -> int:
    return default_workers() if config.loader_workers is None else config.loader_workers


def _shard_throughput(stats: LoaderStats) -> dict:
    return {name: value for name, value in stats.as_metadata().items() if name in THROUGHPUT}


def _with_run_throughput(events, stats: LoaderStats):
    """The run's result, with the input pipeline's throughput over the shards this run computed."""
    for event in events:
        if isinstance(event, MaterializeResult):
            metadata = {**(event.metadata or {}),
                        **{f"pipeline_{name}": value for name, value in stats.as_metadata().items()}}
            event = MaterializeResult(metadata=metadata, data_version=event.data_version, tags=event.tags)
        yield event


class PersonBoxesConfig(CheckedConfig):
    conf: float = 0.25
    iou: float = 0.7
    imgsz: int = 640
    # None: the profile's value (ultralytics' 300 for real weights; 4 for the tiny random detector).
    max_det: int | None = None
    min_side: float = DEFAULT_MIN_SIDE
    batch_size: int = 16
    # DataLoader processes decoding and letterboxing while the model runs; None: min(4, CPU count - 1); 0: none.
    loader_workers: int | None = None
    force: bool = False

    def problems(self) -> list[str]:
        # min_side 0 would call zero-area boxes valid, and votes and labels cannot crop them.
        return (out_of_range("conf", self.conf, 0, 1, low_open=True) + out_of_range("iou", self.iou, 0, 1, low_open=True)
                + out_of_range("imgsz", self.imgsz, 32) + out_of_range("max_det", self.max_det, 1)
                + out_of_range("min_side", self.min_side, 0, low_open=True) + out_of_range("batch_size", self.batch_size, 1)
                + out_of_range("loader_workers", self.loader_workers, 0))


def shard_recipe(asset: str, models: dict[str, str], settings: dict, upstream: dict[str, str]) -> Recipe:
    return Recipe(asset, code_version(asset), models=models, settings=settings, upstream=upstream)


def _person_boxes(gpu_asset: dict):
    @asset(
        name=BOXES,
        deps=["samples", weights_key("detector")],
        code_version=code_version(BOXES),
        group_name="annotation",
        description="YOLO11 person boxes (class 0) per sample: xyxy in original pixels, confidence, area "
        "fraction, valid = min side >= 30 px. One row per box, or one row saying why a sample has none.",
        **gpu_asset,
    )
    def person_boxes(
        context: AssetExecutionContext,
        config: PersonBoxesConfig,
        shard_store: ShardStoreResource,
        shard_inputs: ShardInputsResource,
        models: ModelsResource,
    ):
        config.check(BOXES)
        store = shard_store.store()
        max_det = profile_default(models.profile, "max_det", config.max_det)
        detector = models.detector(conf=config.conf, iou=config.iou, imgsz=config.imgsz, max_det=max_det)
        detection_settings = {**config.model_dump(exclude=RESULT_NEUTRAL), "max_det": max_det}
        run_stats = LoaderStats()

        def process(shard: str):
            samples_version = upstream_version(store, "samples", shard)
            recipe = shard_recipe(BOXES, {"detector": detector.fingerprint}, detection_settings,
                                  {"samples": samples_version})

            def compute():
                stats = LoaderStats()
                table = detect_shard(shard_inputs.locate(shard), read_upstream(store, "samples", shard,
                                                                               samples_version),
                                     detector, min_side=config.min_side, batch_size=config.batch_size,
                                     workers=_workers(config), stats=stats)
                run_stats.add(stats)
                boxes = table.filter(table["box_id"].is_valid())
                return table, {"persons": boxes.num_rows, "valid_persons": sum(boxes.column("valid").to_pylist()),
                               **_shard_throughput(stats)}

            return write_shard(context, store, shard, recipe, compute, force=config.force)

        yield from _with_run_throughput(materialize_shards(
            context, process, shard_errors=SHARD_ERRORS,
            totals=("rows", "persons", "valid_persons", "errors", "upstream_errors"),
            single_shard_metadata=THROUGHPUT,
            extra_metadata={"model": detector.name, "weights_sha256": detector.fingerprint[:16],
                            "random_weights": detector.random_weights},
        ), run_stats)

    return person_boxes


class VotesConfig(CheckedConfig):
    # Share of valid persons voted on, each chosen by a seeded hash of (shard, key, box_id) under the rate
    # (annotation/vote_sample.py). None: the profile's value (paper: 0.01; tiny: 1.0, every demo person).
    sample_rate: float | None = None
    seed: int = 0
    consensus_rule: Literal["unanimous_all", "unanimous_parseable", "majority"] = DEFAULT_CONSENSUS_RULE
    batch_size: int = 16
    loader_workers: int | None = None  # image-decoding processes; None: min(4, CPU count - 1); 0: in process
    force: bool = False

    def problems(self) -> list[str]:
        return (out_of_range("sample_rate", self.sample_rate, 0, 1, low_open=True)
                + out_of_range("batch_size", self.batch_size, 1)
                + out_of_range("loader_workers", self.loader_workers, 0))


# Label-free ensemble figures (vote_statistics.py), shown per shard and, pooled, for the run.
VOTE_FIGURES = ("sampled_crops", "consensus_yield", "parse_rate", "agreement_matrix")


def _with_run_vote_figures(events, tallies: dict[str, VoteTally]):
    """The run's result, with the ensemble figures pooled over every shard of the run (computed or skipped)."""
    for event in events:
        total = pooled(tallies.values())
        if isinstance(event, MaterializeResult) and total is not None:
            metadata = {**(event.metadata or {}),
                        **{f"run_{name}": MetadataValue.json(value) if isinstance(value, dict) else value
                           for name, value in total.rates().items()}}
            event = MaterializeResult(metadata=metadata, data_version=event.data_version, tags=event.tags)
        yield event


def _votes_asset(question: str, gpu_asset: dict):
    name = f"{question}_votes"

    @asset(
        name=name,
        deps=[BOXES, *(weights_key(role) for role in MEMBER_ROLES)],
        code_version=code_version(name),
        group_name="annotation",
        description=f"MLLM-ensemble {question} votes on a seeded, uniform sample of valid persons (a seeded hash "
        "of shard, key and box id under `sample_rate`): each member prompted as in Girrbach et al. (shuffled "
        "lettered options, greedy, 5 new tokens), every raw answer kept, consensus by a configurable rule "
        "(default: all three members parseable and equal). Metadata: per-member parse rate, pairwise agreement "
        "and consensus yield over all sampled crops, never per class. Restricted storage.",
        **gpu_asset,
    )
    def _votes(
        context: AssetExecutionContext,
        config: VotesConfig,
        shard_store: ShardStoreResource,
        shard_inputs: ShardInputsResource,
        models: ModelsResource,
    ):
        config.check(name)
        store = shard_store.store()
        members = {role: models.vlm(role) for role in MEMBER_ROLES}
        member_names = [m.name for m in members.values()]
        sample_rate = profile_default(models.profile, "votes_sample_rate", config.sample_rate)
        vote_settings = {**config.model_dump(exclude=RESULT_NEUTRAL), "sample_rate": sample_rate,
                         "sample_scheme": SAMPLE_SCHEME,
                         "members": {role: m.settings(5) for role, m in members.items()}}
        run_stats = LoaderStats()
        tallies: dict[str, VoteTally] = {}

        def process(shard: str):
            boxes_version = upstream_version(store, BOXES, shard)
            recipe = shard_recipe(name, {role: m.fingerprint for role, m in members.items()}, vote_settings,
                                  {BOXES: boxes_version})

            def compute():
                stats = LoaderStats()
                table = vote_shard(shard_inputs.locate(shard), read_upstream(store, BOXES, shard, boxes_version),
                                   list(members.values()), question, sample_rate=sample_rate,
                                   seed=config.seed, rule=config.consensus_rule, batch_size=config.batch_size,
                                   workers=_workers(config), stats=stats)
                run_stats.add(stats)
                tally = VoteTally.of_votes(table, member_names)
                # The marker is restricted storage: the label-free counts stay there for exact pooling.
                return table, {"crops": tally.crops, "consensus_crops": tally.consensus,
                               "vote_counts": tally.counts(), "sample_rate": sample_rate, "sample_seed": config.seed,
                               **tally.rates(), **_shard_throughput(stats)}

            outcome = write_shard(context, store, shard, recipe, compute, restricted=True, force=config.force)
            if "vote_counts" in outcome.marker:
                tallies[shard] = VoteTally.from_counts(outcome.marker["vote_counts"])
            return outcome

        yield from _with_run_vote_figures(_with_run_throughput(materialize_shards(
            context, process, shard_errors=SHARD_ERRORS, totals=("crops",),
            single_shard_metadata=(*THROUGHPUT, *VOTE_FIGURES),
            extra_metadata={"members": MetadataValue.json(member_names), "sample_rate": sample_rate,
                            "sample_seed": config.seed, "consensus_rule": config.consensus_rule},
        ), run_stats), tallies)

    return _votes


class ClassifierConfig(CheckedConfig):
    # None: the profile's value. Paper profile: the paper's recipe for the question (gender: 10 epochs at 1e-5,
    # cross-entropy; race: 10 epochs at 1e-4, evidential loss, classes resampled to max/4). Tiny: 3 epochs at 1e-3.
    epochs: int | None = None
    lr: float | None = None
    batch_size: int = 32
    seed: int = 0
    import_checkpoint: str | None = None
    # How training runs, not what it learns: None = CUDA when available, else CPU (said in the metadata).
    device: str | None = None
    mixed_precision: bool = True  # bf16 autocast, CUDA only
    loader_workers: int | None = None  # crop-decoding processes; None: min(4, CPU count - 1); 0: in process
    # Crops are streamed from the shards; the order is shuffled within windows of this many shards (bounded
    # memory). None: a uniform shuffle of the whole training set (the paper's), holding every crop per epoch.
    shuffle_window_shards: int | None = 256

    def problems(self) -> list[str]:
        return (out_of_range("epochs", self.epochs, 1) + out_of_range("lr", self.lr, 0, 1, low_open=True)
                + out_of_range("batch_size", self.batch_size, 1) + out_of_range("loader_workers", self.loader_workers, 0)
                + out_of_range("shuffle_window_shards", self.shuffle_window_shards, 1))


def classifier_recipe(question: str, config: ClassifierConfig, profile: str):
    """The paper's recipe for ``question``; epochs and lr from the run config, else from the profile (the paper
    profile's are the paper's own), each departure recorded with its reason in the recipe's deviations."""
    from laion_audit.annotation.classifier_training import paper_recipe, recipe_for

    paper = paper_recipe(question)
    chosen, reasons = {}, {}
    for name, config_value, profile_key in (("epochs", config.epochs, "classifier_epochs"),
                                            ("lr", config.lr, "classifier_lr")):
        if config_value is not None:
            chosen[name], reasons[name] = config_value, "set in the run config"
        elif profile != "paper":
            chosen[name] = profile_default(profile, profile_key)
            reasons[name] = f"{profile} profile default (random-weight backbone, trained in seconds)"
    if profile != "paper" and paper.resample_divisor is not None:
        # A tiny run has a handful of consensus crops per class: floor(max / 4) would leave none to train on.
        chosen["resample_divisor"] = 1
        reasons["resample_divisor"] = (f"{profile} profile: too few consensus crops for floor(max / "
                                       f"{paper.resample_divisor}); every class oversampled to the largest")
    lr = chosen.get("lr", paper.lr)
    min_lr = min(paper.min_lr, lr)
    if min_lr != paper.min_lr:
        reasons["min_lr"] = "lowered to the chosen lr"
    return recipe_for(question, reasons=reasons, **chosen, min_lr=min_lr, batch_size=config.batch_size,
                      seed=config.seed, device=config.device, mixed_precision=config.mixed_precision,
                      loader_workers=_workers(config), shuffle_window_groups=config.shuffle_window_shards)


def _classifier_asset(question: str, classes: tuple[str, ...], settings: Settings):
    name = f"{question}_classifier"

    @asset(
        name=name,
        deps=[f"{question}_votes", BOXES, weights_key("classifier_backbone")],
        code_version="classifier-3",
        group_name="models",
        op_tags=gpu_op_tags(settings.gpu),
        pool=GPU_POOL,
        kinds={"pytorch"},
        description=f"{question.capitalize()} classifier: open_clip image tower + linear head fine-tuned on the "
        "ensemble's consensus labels with the paper's recipe for the question (AdamW, OneCycle per batch, best "
        "validation accuracy; gender cross-entropy, race evidential loss and class resampling), on CUDA when "
        "available, or an imported checkpoint. Recipe, device and deviations from the paper in classifier.json. "
        "Data version = checkpoint sha256.",
    )
    def _classifier(
        context: AssetExecutionContext,
        config: ClassifierConfig,
        shard_store: ShardStoreResource,
        shard_inputs: ShardInputsResource,
        models: ModelsResource,
    ) -> MaterializeResult:
        from laion_audit.models.image_classifier import RECORD_FILE
        from laion_audit.stats.group_statistics import K_MIN

        config.check(name)
        out_root = models.trained_root(name)
        if config.import_checkpoint:
            published = import_checkpoint(Path(config.import_checkpoint), out_root, classes)
        else:
            examples = consensus_examples(shard_store.store(), f"{question}_votes", classes, shard_inputs.locate)
            if examples.skipped_stale:
                context.log.warning(f"{len(examples.skipped_stale)} vote shards were computed on boxes that have "
                                    "since changed and were left out; re-materialize them to use them")
            recipe = classifier_recipe(question, config, models.profile)
            backbone = models.resolve("classifier_backbone")
            reference = f"local-dir:{backbone.path}" if backbone.path.is_dir() else str(backbone.path)
            try:
                published = train_from_consensus(examples, classes, reference, recipe, out_root,
                                                 backbone_fingerprint=backbone.fingerprint)
            except NotEnoughConsensusError as exc:
                raise Failure(description=str(exc)) from exc
        # publish_checkpoint left only suppressed metrics in classifier.json (no cell < K_MIN; None marks a
        # hidden cell); split lists, class counts and full metrics are in the owner-only training record.
        meta = published["meta"]
        val = meta.get("val_metrics") or {}
        record = Path(published["folder"]) / RECORD_FILE
        metadata = {
            "weights_sha256": published["fingerprint"][:16],
            "checkpoint": MetadataValue.path(published["folder"]),
            "training_record": MetadataValue.path(str(record)) if record.is_file() else None,
            "imported": bool(config.import_checkpoint),
            "random_weights_backbone": models.random_weights(),
            "recipe": MetadataValue.json(meta["recipe"]) if meta.get("recipe") else None,
            "deviations_from_paper": MetadataValue.json(meta["deviations"]) if "deviations" in meta else None,
            "device": (meta.get("training_run") or {}).get("device"),
            "device_note": (meta.get("training_run") or {}).get("device_note"),
        }
        if val:
            k_min = val.get("suppressed_below", K_MIN)
            metadata.update(
                val_accuracy=float(val["accuracy"]) if val.get("accuracy") is not None else None,
                val_kappa=float(val["kappa"]) if val.get("kappa") is not None else None,
                val_per_class_accuracy=MetadataValue.json(val.get("per_class_accuracy") or {}),
                val_confusion_matrix=MetadataValue.json({"classes": list(classes),
                                                         "matrix": val.get("confusion_matrix"),
                                                         "suppressed_below": k_min}),
                training_examples=(meta.get("trained_on") or {}).get("n_examples"),
                k_min=k_min,
            )
        metadata = {k: v for k, v in metadata.items() if v is not None}
        return MaterializeResult(metadata=metadata, data_version=DataVersion(published["fingerprint"]))

    return _classifier




class LabelsConfig(CheckedConfig):
    # The paper's abstain rule (race_labeling_classifier.py): the label is "unclear" when the classifier's raw max
    # logit is <= this value (a logit, not a probability; the paper's race value is not public). None: never.
    abstain_max_logit_at_or_below: float | None = None
    batch_size: int = 64
    loader_workers: int | None = None  # image-decoding processes; None: min(4, CPU count - 1); 0: in process
    force: bool = False

    def problems(self) -> list[str]:
        return (out_of_range("batch_size", self.batch_size, 1)
                + out_of_range("loader_workers", self.loader_workers, 0))


def _labels_asset(question: str, classes: tuple[str, ...], gpu_asset: dict):
    name = f"{question}_labels"
    classifier_role = f"{question}_classifier"

    @asset(
        name=name,
        deps=[BOXES, classifier_role],
        code_version=code_version(name),
        group_name="annotation",
        description=f"Perceived {question} per valid person from the trained classifier, probabilities kept. "
        "Restricted storage; no row-level values in logs or metadata.",
        **gpu_asset,
    )
    def _labels(
        context: AssetExecutionContext,
        config: LabelsConfig,
        shard_store: ShardStoreResource,
        shard_inputs: ShardInputsResource,
        models: ModelsResource,
    ):
        config.check(name)
        store = shard_store.store()
        folder, fingerprint = current_checkpoint(models.trained_root(classifier_role))
        classifier = models.classifier(folder, fingerprint, classifier_role)
        backbone = models.current_models().classifier_meta(classifier_role).get("backbone_fingerprint")
        label_settings = {"abstain_max_logit_at_or_below": config.abstain_max_logit_at_or_below,
                          "abstain_rule": "max raw logit <= abstain_max_logit_at_or_below -> unclear",
                          "abstain_class": "unclear"}
        run_stats = LoaderStats()

        def process(shard: str):
            boxes_version = upstream_version(store, BOXES, shard)
            recipe = shard_recipe(name, {classifier_role: fingerprint}, label_settings, {BOXES: boxes_version})

            def compute():
                stats = LoaderStats()
                table = label_shard(shard_inputs.locate(shard), read_upstream(store, BOXES, shard, boxes_version),
                                    classifier, classes,
                                    abstain_max_logit_at_or_below=config.abstain_max_logit_at_or_below,
                                    batch_size=config.batch_size, workers=_workers(config), stats=stats)
                run_stats.add(stats)
                return table, {"persons": table.filter(table["box_id"].is_valid()).num_rows,
                               "classifier_backbone": backbone, **_shard_throughput(stats)}

            return write_shard(context, store, shard, recipe, compute, restricted=True, force=config.force)

        yield from _with_run_throughput(materialize_shards(
            context, process, shard_errors=SHARD_ERRORS, totals=("rows", "persons", "errors", "upstream_errors"),
            single_shard_metadata=THROUGHPUT, extra_metadata={"classifier_sha256": fingerprint[:16]}), run_stats)

    return _labels


class CaptionsConfig(CheckedConfig):
    # None: the profile's value (paper: 256; tiny: 24).
    max_new_tokens: int | None = None
    batch_size: int = 8
    loader_workers: int | None = None  # image-decoding processes; None: min(4, CPU count - 1); 0: in process
    force: bool = False

    def problems(self) -> list[str]:
        return (out_of_range("max_new_tokens", self.max_new_tokens, 1) + out_of_range("batch_size", self.batch_size, 1)
                + out_of_range("loader_workers", self.loader_workers, 0))


def _person_captions(gpu_asset: dict):
    @asset(
        name="person_captions",
        deps=[BOXES, weights_key("captioner")],
        code_version=code_version("person_captions"),
        group_name="annotation",
        description="InternVL3 person-centric captions: the full image with a red 3-px box around the person, "
        "the paper's prompt, greedy decoding. Restricted storage: a caption describes how a person looks.",
        **gpu_asset,
    )
    def person_captions(
        context: AssetExecutionContext,
        config: CaptionsConfig,
        shard_store: ShardStoreResource,
        shard_inputs: ShardInputsResource,
        models: ModelsResource,
    ):
        config.check("person_captions")
        store = shard_store.store()
        captioner = models.vlm("captioner")
        max_new_tokens = profile_default(models.profile, "caption_max_new_tokens", config.max_new_tokens)
        run_stats = LoaderStats()

        def process(shard: str):
            boxes_version = upstream_version(store, BOXES, shard)
            recipe = shard_recipe("person_captions", {"captioner": captioner.fingerprint},
                                  {"max_new_tokens": max_new_tokens, **captioner.settings(max_new_tokens)},
                                  {BOXES: boxes_version})

            def compute():
                stats = LoaderStats()
                table = caption_shard(shard_inputs.locate(shard), read_upstream(store, BOXES, shard, boxes_version),
                                      captioner, max_new_tokens=max_new_tokens, batch_size=config.batch_size,
                                      workers=_workers(config), stats=stats)
                run_stats.add(stats)
                return table, {"captions": table.filter(table["box_id"].is_valid()).num_rows,
                               **_shard_throughput(stats)}

            return write_shard(context, store, shard, recipe, compute, restricted=True, force=config.force)

        yield from _with_run_throughput(materialize_shards(
            context, process, shard_errors=SHARD_ERRORS, totals=("rows", "captions", "errors", "upstream_errors"),
            single_shard_metadata=THROUGHPUT,
            extra_metadata={"model": captioner.name, "weights_sha256": captioner.fingerprint[:16],
                            "random_weights": captioner.random_weights},
        ), run_stats)

    return person_captions


def build_annotation_defs(settings: Settings) -> Definitions:
    """Every GPU step carries the cluster's op tags, the `gpu` pool and the multi-shard backfill policy."""
    gpu_asset = dict(
        partitions_def=shard_partitions,
        op_tags=gpu_op_tags(settings.gpu),
        pool=GPU_POOL,
        backfill_policy=gpu_backfill_policy(settings.gpu),
        retry_policy=GPU_RETRY_POLICY,
        kinds={"pytorch", "parquet"},
    )
    assets = [
        _person_boxes(gpu_asset),
        _votes_asset("gender", gpu_asset),
        _votes_asset("race", gpu_asset),
        _classifier_asset("gender", GENDER_CLASSES, settings),
        _classifier_asset("race", RACE_CLASSES, settings),
        _labels_asset("gender", GENDER_CLASSES, gpu_asset),
        _labels_asset("race", RACE_CLASSES, gpu_asset),
        _person_captions(gpu_asset),
    ]
    tags = code_identity_tags()
    jobs = [
        define_asset_job(
            "person_detection_job", selection=AssetSelection.assets(BOXES, "gender_votes", "race_votes").without_checks(),
            partitions_def=shard_partitions, tags=tags,
            description="GPU: person boxes and the MLLM-ensemble votes, per shard."),
        define_asset_job(
            "classifier_training_job", selection=AssetSelection.assets("gender_classifier", "race_classifier"),
            tags=tags, description="Train (or import) the gender and race classifiers from the consensus votes."),
        define_asset_job(
            "person_labels_job", selection=AssetSelection.assets("gender_labels", "race_labels", "person_captions").without_checks(),
            partitions_def=shard_partitions, tags=tags,
            description="GPU: demographic labels and person-centric captions, per shard."),
    ]
    return Definitions(assets=assets, jobs=jobs)
