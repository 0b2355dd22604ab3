"""Person annotation chain: boxes (YOLO11), ensemble votes, trained classifiers, labels, captions (InternVL3).

Wiring only; the work is in person_detection.py, person_annotation.py and classifier_models.py. Every GPU
step carries the `dagster-k8s/config` op tags, the `gpu` pool and a multi-shard backfill policy; every output
row names the model and weights fingerprint that produced it.
"""

from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    Config,
    DataVersion,
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
from laion_audit.defs.resources import ShardInputsResource, ShardStoreResource
from laion_audit.defs.shard_runs import UpstreamNotReadyError, materialize_shards, require, write_shard
from laion_audit.annotation.person_annotation import caption_shard, label_shard, vote_shard
from laion_audit.annotation.detection import DEFAULT_MIN_SIDE, detect_shard
from laion_audit.ops.settings import Settings
from laion_audit.shards.reader import ShardReadError
from laion_audit.shards.sources import ShardNotFoundError

_settings = Settings.from_env()
_TINY = _settings.model_profile == "tiny"
SHARD_ERRORS = (UpstreamNotReadyError, ShardReadError, ShardNotFoundError)
GPU_ASSET = dict(
    partitions_def=shard_partitions,
    op_tags=gpu_op_tags(),
    pool=GPU_POOL,
    backfill_policy=gpu_backfill_policy(),
    retry_policy=GPU_RETRY_POLICY,
    kinds={"pytorch", "parquet"},
)


class PersonBoxesConfig(Config):
    conf: float = 0.25
    iou: float = 0.7
    imgsz: int = 640
    # 300 is ultralytics' default; a random-weight tiny detector fires everywhere, so it is capped there.
    max_det: int = 4 if _TINY else 300
    min_side: float = DEFAULT_MIN_SIDE
    batch_size: int = 16
    force: bool = False


@asset(
    deps=["samples", weights_key("detector")],
    code_version="person_boxes-1",
    group_name="annotation",
    description="YOLO11 person boxes (class 0) per sample: xyxy in original pixels, confidence, area fraction, "
    "valid = min side >= 30 px. One row per box, or one row saying why a sample has none.",
    **GPU_ASSET,
)
def person_boxes(
    context: AssetExecutionContext,
    config: PersonBoxesConfig,
    shard_store: ShardStoreResource,
    shard_inputs: ShardInputsResource,
    models: ModelsResource,
) -> MaterializeResult:
    store = shard_store.store()
    detector = models.detector(conf=config.conf, iou=config.iou, imgsz=config.imgsz, max_det=config.max_det)

    def compute(shard: str):
        table = detect_shard(shard_inputs.locate(shard), require(store, "samples", shard), detector,
                             min_side=config.min_side, batch_size=config.batch_size)
        boxes = table.filter(table["box_id"].is_valid())
        return table, {
            "persons": boxes.num_rows,
            "valid_persons": sum(boxes.column("valid").to_pylist()),
            "errors": sum(1 for s in table.column("status").to_pylist() if s not in ("ok", "no_image")),
            "settings": config.model_dump(exclude={"force"}),
        }

    return materialize_shards(
        context,
        lambda shard: write_shard(context, store, shard, code_version="person_boxes-1",
                                  models={"detector": detector.fingerprint}, compute=lambda: compute(shard),
                                  force=config.force),
        shard_errors=SHARD_ERRORS,
        totals=("rows", "persons", "valid_persons", "errors"),
        extra_metadata={"model": detector.name, "weights_sha256": detector.fingerprint[:16],
                        "random_weights": detector.random_weights},
    )


class VotesConfig(Config):
    sample_size: int = 64
    seed: int = 0
    consensus_rule: str = "unanimous_parseable"
    batch_size: int = 16
    force: bool = False


def _votes_asset(question: str):
    name = f"{question}_votes"

    @asset(
        name=name,
        deps=["person_boxes", *(weights_key(role) for role in MEMBER_ROLES)],
        code_version="votes-1",
        group_name="annotation",
        description=f"MLLM-ensemble {question} votes on a seeded sample of valid person crops: each member "
        "prompted as in Girrbach et al. (shuffled lettered options, greedy, 5 new tokens), every raw answer kept, "
        "consensus by a configurable rule. Restricted storage.",
        **GPU_ASSET,
    )
    def _votes(
        context: AssetExecutionContext,
        config: VotesConfig,
        shard_store: ShardStoreResource,
        shard_inputs: ShardInputsResource,
        models: ModelsResource,
    ) -> MaterializeResult:
        store = shard_store.store()
        members = [models.vlm(role) for role in MEMBER_ROLES]

        def compute(shard: str):
            table = vote_shard(shard_inputs.locate(shard), require(store, "person_boxes", shard), members, question,
                               sample_size=config.sample_size, seed=config.seed, rule=config.consensus_rule,
                               batch_size=config.batch_size)
            crops = table.num_rows // len(members)
            agreed = len({(r["key"], r["box_id"]) for r in table.to_pylist() if r["consensus"] is not None})
            return table, {"crops": crops, "consensus_crops": agreed, "errors": 0,
                           "sampling": {"sample_size": config.sample_size, "seed": config.seed},
                           "consensus_rule": config.consensus_rule}

        return materialize_shards(
            context,
            lambda shard: write_shard(context, store, shard, code_version="votes-1",
                                      models={m.name: m.fingerprint for m in members},
                                      compute=lambda: compute(shard), restricted=True, force=config.force),
            shard_errors=SHARD_ERRORS,
            totals=("crops", "consensus_crops"),
        )

    return _votes


gender_votes = _votes_asset("gender")
race_votes = _votes_asset("race")


class ClassifierConfig(Config):
    epochs: int = 3 if _TINY else 10
    lr: float = 1e-3 if _TINY else 1e-5
    batch_size: int = 32
    seed: int = 0
    import_checkpoint: str | None = None


def _classifier_asset(question: str, classes: tuple[str, ...]):
    name = f"{question}_classifier"

    @asset(
        name=name,
        deps=[f"{question}_votes", "person_boxes", weights_key("classifier_backbone")],
        code_version="classifier-1",
        group_name="models",
        op_tags=gpu_op_tags(),
        pool=GPU_POOL,
        kinds={"pytorch"},
        description=f"{question.capitalize()} classifier: open_clip image tower + linear head fine-tuned on the "
        "ensemble's consensus labels (AdamW, OneCycle, cross-entropy, best validation accuracy), or an imported "
        "checkpoint. Data version = checkpoint sha256.",
    )
    def _classifier(
        context: AssetExecutionContext,
        config: ClassifierConfig,
        shard_store: ShardStoreResource,
        shard_inputs: ShardInputsResource,
        models: ModelsResource,
    ) -> MaterializeResult:
        from laion_audit.annotation.classifier_training import TrainingRecipe

        out_root = models.trained_root(name)
        if config.import_checkpoint:
            published = import_checkpoint(Path(config.import_checkpoint), out_root, classes)
        else:
            examples = consensus_examples(shard_store.store(), f"{question}_votes", classes, shard_inputs.locate)
            recipe = TrainingRecipe(batch_size=config.batch_size, epochs=config.epochs, lr=config.lr,
                                    min_lr=config.lr / 10, seed=config.seed)
            backbone = models.resolve("classifier_backbone")
            reference = f"local-dir:{backbone.path}" if backbone.path.is_dir() else str(backbone.path)
            try:
                published = train_from_consensus(examples, classes, reference, recipe, out_root)
            except NotEnoughConsensusError as exc:
                raise Failure(description=str(exc)) from exc
        meta = published["meta"]
        val = meta.get("val_metrics") or {}
        metadata = {
            "weights_sha256": published["fingerprint"][:16],
            "checkpoint": MetadataValue.path(published["folder"]),
            "imported": bool(config.import_checkpoint),
            "random_weights_backbone": models.random_weights(),
        }
        if val:
            metadata.update(
                val_accuracy=float(val["accuracy"]),
                val_kappa=float(val["kappa"]) if val.get("kappa") is not None else None,
                val_per_class_accuracy=MetadataValue.json(val["per_class_accuracy"]),
                val_confusion_matrix=MetadataValue.json({"classes": list(classes),
                                                         "matrix": val["confusion_matrix"]}),
                training_examples=meta["trained_on"]["n_examples"],
            )
        metadata = {k: v for k, v in metadata.items() if v is not None}
        return MaterializeResult(metadata=metadata, data_version=DataVersion(published["fingerprint"]))

    return _classifier


gender_classifier = _classifier_asset("gender", GENDER_CLASSES)
race_classifier = _classifier_asset("race", RACE_CLASSES)


class LabelsConfig(Config):
    # Below this top probability the label is "unclear" (paper: a race-classifier threshold, value not public).
    abstain_threshold: float | None = None
    batch_size: int = 64
    force: bool = False


def _labels_asset(question: str, classes: tuple[str, ...]):
    name = f"{question}_labels"

    @asset(
        name=name,
        deps=["person_boxes", f"{question}_classifier"],
        code_version="labels-1",
        group_name="annotation",
        description=f"Perceived {question} per valid person from the trained classifier, probabilities kept. "
        "Restricted storage; no row-level values in logs or metadata.",
        **GPU_ASSET,
    )
    def _labels(
        context: AssetExecutionContext,
        config: LabelsConfig,
        shard_store: ShardStoreResource,
        shard_inputs: ShardInputsResource,
        models: ModelsResource,
    ) -> MaterializeResult:
        store = shard_store.store()
        folder, fingerprint = current_checkpoint(models.trained_root(f"{question}_classifier"))
        classifier = models.classifier(folder, fingerprint, f"{question}_classifier")

        def compute(shard: str):
            table = label_shard(shard_inputs.locate(shard), require(store, "person_boxes", shard), classifier,
                                classes, abstain_threshold=config.abstain_threshold, batch_size=config.batch_size)
            persons = table.filter(table["box_id"].is_valid()).num_rows
            return table, {"persons": persons, "errors": 0, "abstain_threshold": config.abstain_threshold}

        return materialize_shards(
            context,
            lambda shard: write_shard(context, store, shard, code_version="labels-1",
                                      models={name.replace("labels", "classifier"): fingerprint},
                                      compute=lambda: compute(shard), restricted=True, force=config.force),
            shard_errors=SHARD_ERRORS,
            totals=("rows", "persons"),
            extra_metadata={"classifier_sha256": fingerprint[:16]},
        )

    return _labels


gender_labels = _labels_asset("gender", GENDER_CLASSES)
race_labels = _labels_asset("race", RACE_CLASSES)


class CaptionsConfig(Config):
    max_new_tokens: int = 24 if _TINY else 256
    batch_size: int = 8
    force: bool = False


@asset(
    deps=["person_boxes", weights_key("captioner")],
    code_version="person_captions-1",
    group_name="annotation",
    description="InternVL3 person-centric captions: the full image with a red 3-px box around the person, the "
    "paper's prompt, greedy decoding.",
    **GPU_ASSET,
)
def person_captions(
    context: AssetExecutionContext,
    config: CaptionsConfig,
    shard_store: ShardStoreResource,
    shard_inputs: ShardInputsResource,
    models: ModelsResource,
) -> MaterializeResult:
    store = shard_store.store()
    captioner = models.vlm("captioner")

    def compute(shard: str):
        table = caption_shard(shard_inputs.locate(shard), require(store, "person_boxes", shard), captioner,
                              max_new_tokens=config.max_new_tokens, batch_size=config.batch_size)
        return table, {"captions": table.filter(table["box_id"].is_valid()).num_rows, "errors": 0,
                       "max_new_tokens": config.max_new_tokens}

    return materialize_shards(
        context,
        lambda shard: write_shard(context, store, shard, code_version="person_captions-1",
                                  models={"captioner": captioner.fingerprint}, compute=lambda: compute(shard),
                                  force=config.force),
        shard_errors=SHARD_ERRORS,
        totals=("rows", "captions"),
        extra_metadata={"model": captioner.name, "weights_sha256": captioner.fingerprint[:16],
                        "random_weights": captioner.random_weights},
    )


annotation_assets = [person_boxes, gender_votes, race_votes, gender_classifier, race_classifier, gender_labels,
                     race_labels, person_captions]

person_detection_job = define_asset_job(
    "person_detection_job",
    selection=AssetSelection.assets(person_boxes, gender_votes, race_votes),
    partitions_def=shard_partitions,
    description="GPU: person boxes and the MLLM-ensemble votes, per shard.",
)
classifier_training_job = define_asset_job(
    "classifier_training_job",
    selection=AssetSelection.assets(gender_classifier, race_classifier),
    description="Train (or import) the gender and race classifiers from the consensus votes.",
)
person_labels_job = define_asset_job(
    "person_labels_job",
    selection=AssetSelection.assets(gender_labels, race_labels, person_captions),
    partitions_def=shard_partitions,
    description="GPU: demographic labels and person-centric captions, per shard.",
)
