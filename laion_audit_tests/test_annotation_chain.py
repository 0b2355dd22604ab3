"""The person annotation chain on the sample shards with the tiny profile, on a real SQLite instance."""

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import AssetKey

from laion_audit.annotation.schemas import (
    GENDER_LABELS_SCHEMA,
    PERSON_BOXES_SCHEMA,
    PERSON_CAPTIONS_SCHEMA,
    RACE_LABELS_SCHEMA,
    VOTES_SCHEMA,
)
from laion_audit.definitions import build_definitions
from laion_audit.models.prompts import CONSENSUS_RULES
from laion_audit.ops.settings import Settings
from laion_audit.shards.store import ShardStore

from .dagster_harness import dagster_test_instance, register

# Two good shards, the bad shard, the text-only shard. The tiny members agree unanimously on few crops, and a
# classifier publishes metrics only when trained on at least k (10) of them: one good shard is not enough.
SHARDS = ["00000", "00001", "00003", "00004"]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture(scope="module")
def chain(tmp_path_factory, sample_shards, tiny_models):
    root = tmp_path_factory.mktemp("chain")
    shutil.copytree(sample_shards, root / "shards")
    shutil.copytree(tiny_models, root / "models")
    settings = Settings(home=str(root), shards_root=str(root / "shards"), store_root=str(root / "store"),
                        executor="in_process", register_batch=100, max_partitions_per_run=8, model_profile="tiny",
                        models_dir=str(root / "models"), trained_dir=str(root / "trained"))
    defs = build_definitions(settings)

    def run(job, partition_key=None, **kwargs):
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, partition_key=partition_key, run_config=kwargs.pop("run_config", QUIET), **kwargs)
        assert result.success, job
        return result

    with dagster_test_instance() as instance:
        register(instance, SHARDS)
        run("observe_model_weights_job")
        detection = {}
        for shard in SHARDS:
            run("shard_ingest_job", shard,
                run_config={**QUIET, "ops": {"alt_text_scores": {"config": {"hate_speech": True}}}})
            detection[shard] = run("person_detection_job", shard)
        training = run("classifier_training_job")
        for shard in SHARDS:
            run("person_labels_job", shard)
            run("group_counts_job", shard)
        yield {"root": root, "store": ShardStore(str(root / "store")), "defs": defs, "instance": instance,
               "run": run, "training": training, "settings": settings, "detection": detection}


def _keys(store, asset, shard, restricted=False):
    return store.read_table(asset, shard, restricted).column("key").to_pylist()


@pytest.mark.parametrize(("asset", "restricted", "schema"), [
    ("person_boxes", False, PERSON_BOXES_SCHEMA),
    ("gender_labels", True, GENDER_LABELS_SCHEMA),
    ("race_labels", True, RACE_LABELS_SCHEMA),
    ("person_captions", True, PERSON_CAPTIONS_SCHEMA),
])
def test_every_sample_key_is_accounted_for_with_provenance(chain, asset, restricted, schema):
    store = chain["store"]
    for shard in SHARDS:
        table = store.read_table(asset, shard, restricted)
        assert table.schema.remove_metadata().equals(
            schema.append(table.schema.field("code_version")).append(table.schema.field("run_id")))
        assert set(table.column("key").to_pylist()) == set(_keys(store, "samples", shard))
        assert all(table.column("model_fingerprint").to_pylist())
        assert all(table.column("random_weights").to_pylist())
        assert set(table.column("code_version").to_pylist()) == {store.read_marker(asset, shard, restricted)[
            "code_version"]}


def test_bad_and_text_only_samples_carry_their_reason(chain):
    store = chain["store"]
    manifest = json.loads((chain["root"] / "shards" / "manifest.json").read_text())
    boxes = {row["key"]: row for row in store.read_table("person_boxes", "00003").to_pylist()}
    for kind, key in manifest["bad_samples"].items():
        if kind in ("corrupt_jpeg", "truncated_jpeg", "decompression_bomb", "missing_image"):
            assert boxes[key]["status"] == "upstream_error" and boxes[key]["error"].startswith("samples:")
    text_only = store.read_table("person_boxes", "00004")
    assert set(text_only.column("status").to_pylist()) == {"no_image"}


def test_boxes_are_in_original_pixels_and_validity_follows_min_side(chain):
    rows = chain["store"].read_table("person_boxes", "00000").to_pylist()
    persons = [r for r in rows if r["box_id"] is not None]
    assert persons
    for r in persons:
        assert 0 <= r["x1"] <= r["x2"] <= r["image_width"] and 0 <= r["y1"] <= r["y2"] <= r["image_height"]
        assert r["valid"] == (min(r["x2"] - r["x1"], r["y2"] - r["y1"]) >= 30)
        assert r["area_fraction"] == pytest.approx(
            (r["x2"] - r["x1"]) * (r["y2"] - r["y1"]) / (r["image_width"] * r["image_height"]), rel=1e-4)
    assert any(r["valid"] for r in persons)


def test_votes_keep_every_member_answer_and_the_rule(chain):
    store = chain["store"]
    marker = store.read_marker("gender_votes", "00000", restricted=True)
    table = store.read_table("gender_votes", "00000", restricted=True)
    assert table.schema.remove_metadata().field("raw_answer") == VOTES_SCHEMA.field("raw_answer")
    rows = table.to_pylist()
    crops = {(r["key"], r["box_id"]) for r in rows}
    # The tiny profile votes on every valid person (rate 1.0), so the sample is exactly the valid boxes.
    boxes = store.read_table("person_boxes", "00000").to_pylist()
    assert crops == {(r["key"], r["box_id"]) for r in boxes if r["valid"]} and crops
    settings = marker["recipe"]["settings"]
    assert settings["sample_rate"] == marker["sample_rate"] == 1.0 and settings["seed"] == marker["sample_seed"] == 0
    assert len(rows) == 3 * len(crops)
    assert {r["consensus_rule"] for r in rows} == {"unanimous_all"} <= set(CONSENSUS_RULES)
    by_crop = {}
    for r in rows:
        by_crop.setdefault((r["key"], r["box_id"]), []).append(r)
    for answers in by_crop.values():
        parsed = [r["parsed"] for r in answers]
        unanimous = None not in parsed and len(set(parsed)) == 1
        assert {r["consensus"] for r in answers} == {parsed[0] if unanimous else None}
    assert len({r["member_fingerprint"] for r in rows}) == 3
    assert all(r["raw_answer"] is not None for r in rows)


def test_demographic_outputs_and_captions_are_owner_only(chain):
    store = chain["store"]
    for asset in ("gender_votes", "race_votes", "gender_labels", "race_labels", "person_captions"):
        path = store.data_path(asset, "00000", restricted=True)
        assert "/restricted/" in path and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not (chain["root"] / "store" / "person_captions").exists()


def test_detection_runs_report_the_input_pipeline_throughput(chain):
    samples = chain["store"].read_table("samples", "00000", columns=["has_image"])
    with_image = sum(samples.column("has_image").to_pylist())
    events = chain["detection"]["00000"].get_asset_materialization_events()
    metadata = next(e.materialization.metadata for e in events if e.asset_key == AssetKey("person_boxes"))
    assert metadata["pipeline_images"].value == with_image > 0
    assert metadata["pipeline_batches"].value == -(-with_image // 16)  # the default batch size
    assert metadata["pipeline_images_per_s"].value > 0
    wait, model, wall = (metadata[f"pipeline_{n}"].value for n in ("input_wait_s", "model_s", "wall_s"))
    assert 0 <= wait and 0 < model and wait + model <= wall + 0.002  # each figure rounded to the millisecond
    assert chain["store"].read_marker("person_boxes", "00000")["images_per_s"] > 0


def test_classifiers_report_metrics_and_their_fingerprint_as_data_version(chain):
    events = chain["training"].get_asset_materialization_events()
    by_key = {e.asset_key.to_user_string(): e.materialization for e in events}
    for name in ("gender_classifier", "race_classifier"):
        materialization = by_key[name]
        metadata = materialization.metadata
        assert 0.0 <= metadata["val_accuracy"].value <= 1.0
        assert "matrix" in metadata["val_confusion_matrix"].value
        assert materialization.tags["dagster/data_version"].startswith(metadata["weights_sha256"].value)
        labels = chain["store"].read_table(name.replace("classifier", "labels"), "00000", restricted=True)
        assert set(labels.column("model_fingerprint").to_pylist()) == {materialization.tags["dagster/data_version"]}


def test_an_existing_checkpoint_can_be_imported(chain):
    trained = chain["root"] / "trained" / "gender_classifier"
    current = json.loads((trained / "current.json").read_text())
    config = {**QUIET, "ops": {"gender_classifier": {"config": {"import_checkpoint": str(trained / current["folder"])}}}}
    result = chain["run"]("classifier_training_job", run_config=config,
                          asset_selection=[AssetKey("gender_classifier")])
    materialization = result.get_asset_materialization_events()[0].materialization
    assert materialization.metadata["imported"].value is True
    assert materialization.tags["dagster/data_version"] == current["fingerprint"]


def test_provenance_command_names_model_weights_code_and_run(chain):
    store = chain["store"]
    labels = store.read_table("gender_labels", "00000", restricted=True).to_pylist()
    person = next(r for r in labels if r["box_id"] is not None)
    cli = Path(sys.executable).with_name("laion-audit")
    out = subprocess.run([str(cli), "provenance", "0", person["key"], "--store", str(store.root)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for asset in ("person_boxes", "gender_labels", "race_labels", "person_captions"):
        assert asset in text
    assert person["model_fingerprint"][:16] in text and person["run_id"] in text and "labels-2" in text


def test_new_detector_weights_make_dependent_partitions_stale(chain):
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    from laion_audit.models.tiny import build_tiny_yolo

    instance, defs = chain["instance"], chain["defs"]
    graph = defs.resolve_asset_graph()

    def status(key):
        return CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance)).get_status(
            AssetKey(key), "00000")

    assert status("person_boxes") == StaleStatus.FRESH
    # Swap the weight file in place; the manifest still records the old fingerprint and must not be believed.
    build_tiny_yolo(chain["root"] / "models" / "yolo11-tiny.pt", seed=1)
    chain["run"]("observe_model_weights_job")
    assert status("person_boxes") == StaleStatus.STALE


def test_group_reports_publish_suppressed_tables_with_their_inputs(chain):
    result = chain["run"]("audit_reports_job")
    by_key = {e.asset_key.to_user_string(): e.materialization for e in result.get_asset_materialization_events()}
    assert {"keyword_audit", "crime_cooccurrence", "sentiment_by_group"} <= set(by_key)
    reports = chain["root"] / "store" / "reports"
    crime = json.loads((reports / "crime_cooccurrence.json").read_text())
    assert set(crime["inputs"]["group_counts"]) == set(SHARDS)
    assert all(set(entry["inputs"]) == {"gender_labels", "race_labels", "alt_text_scores"}
               for entry in crime["inputs"]["group_counts"].values())
    k = crime["settings"]["k_min"]
    for row in crime["rates"] + crime["per_word"]:
        if row["suppressed"]:
            assert row["n_samples"] is None and row.get("hits") is None
        else:
            assert row["n_samples"] >= k
    baseline = next(r for r in crime["rates"] if r["group"] == "baseline")
    assert baseline["rate"] == pytest.approx(baseline["p_base"])
    sentiment = json.loads((reports / "sentiment_by_group.json").read_text())
    assert all(r["n_samples"] is None or r["n_samples"] >= k for r in sentiment["sentiment"])
    assert by_key["crime_cooccurrence"].metadata["chart"].value.startswith("![")


def test_hate_speech_probabilities_come_from_the_registry_model(chain):
    store = chain["store"]
    scores = store.read_table("alt_text_scores", "00000").to_pylist()
    from laion_audit.models.registry import ModelRegistry

    fingerprint = ModelRegistry("tiny", chain["root"] / "models").resolve("hate_speech").fingerprint
    assert {r["hate_model_fingerprint"] for r in scores} == {fingerprint}
    assert all(0.0 <= r["hate_prob"] <= 1.0 for r in scores if r["status"] == "ok")
    assert store.read_marker("alt_text_scores", "00000")["models"] == {"hate_speech": fingerprint}
    chain["run"]("audit_reports_job")
    sentiment = json.loads((chain["root"] / "store" / "reports" / "sentiment_by_group.json").read_text())
    assert all("hate_mean" in row for row in sentiment["sentiment"])


def test_votes_metadata_has_label_free_ensemble_figures_pooled_over_the_run(chain):
    from laion_audit.annotation.schemas import GENDER_CLASSES

    # A run over two shards that are already complete: the figures are pooled from the shards' markers.
    result = chain["run"]("person_detection_job", asset_selection=[AssetKey("gender_votes")],
                          tags={"dagster/asset_partition_range_start": "00000",
                                "dagster/asset_partition_range_end": "00001"})
    metadata = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                    if e.asset_key == AssetKey("gender_votes"))
    assert metadata["shards_skipped_complete"].value == 2
    members = metadata["members"].value
    crops = {}
    for shard in ("00000", "00001"):
        for r in chain["store"].read_table("gender_votes", shard, restricted=True).to_pylist():
            crops.setdefault((shard, r["key"], r["box_id"]), {})[r["member"]] = r["parsed"]
    n = len(crops)
    assert metadata["run_sampled_crops"].value == n > 0 and metadata["sample_rate"].value == 1.0
    assert metadata["run_consensus_yield"].value == pytest.approx(
        sum(None not in a.values() and len(set(a.values())) == 1 for a in crops.values()) / n, abs=1e-4)
    for m in members:
        assert metadata["run_parse_rate"].value[m] == pytest.approx(
            sum(a[m] is not None for a in crops.values()) / n, abs=1e-4)
    matrix = metadata["run_agreement_matrix"].value["matrix"]
    for i, a in enumerate(members):
        for j, b in enumerate(members):
            assert matrix[i][j] == pytest.approx(
                sum(v[a] is not None and v[a] == v[b] for v in crops.values()) / n, abs=1e-4)
    # Nothing in the published metadata names a class: the figures are over all crops, never per label.
    published = json.dumps({k: getattr(v, "value", None) for k, v in metadata.items()}, default=str)
    assert not any(f'"{name}"' in published for name in GENDER_CLASSES)


def test_classifiers_record_their_recipe_device_and_deviations(chain):
    events = chain["training"].get_asset_materialization_events()
    by_key = {e.asset_key.to_user_string(): e.materialization.metadata for e in events}
    for question, loss in (("gender", "cross_entropy"), ("race", "evidential")):
        metadata = by_key[f"{question}_classifier"]
        recipe = metadata["recipe"].value
        assert recipe["name"] == f"paper-{question}" and recipe["loss"] == loss
        assert metadata["device"].value == "cpu" and "CPU" in metadata["device_note"].value  # no GPU here
        deviations = metadata["deviations_from_paper"].value
        assert any(d.startswith("lr 0.001 instead of the paper's") for d in deviations)  # tiny profile
        folder = chain["root"] / "trained" / f"{question}_classifier"
        current = json.loads((folder / "current.json").read_text())
        meta = json.loads((folder / current["folder"] / "classifier.json").read_text())
        assert meta["recipe"] == recipe and meta["deviations"] == deviations
        assert meta["training_run"]["device"] == "cpu" and meta["training_run"]["precision"] == "fp32"
    race_deviations = by_key["race_classifier"]["deviations_from_paper"].value
    assert any(d.startswith("resample_divisor 1 instead of the paper's 4") for d in race_deviations)


def test_streamed_training_crops_are_the_crops_of_the_voted_boxes(chain):
    from laion_audit.annotation.classifiers import consensus_examples
    from laion_audit.annotation.crops import iter_person_images
    from laion_audit.annotation.schemas import GENDER_CLASSES
    from laion_audit.shards.sources import locate_shard

    def locate(shard):
        return locate_shard(chain["settings"].shards_root, shard)

    examples = consensus_examples(chain["store"], "gender_votes", GENDER_CLASSES, locate)
    assert examples.images is None and examples.refs  # by reference only
    source = examples.source()
    loaded = source.load(range(len(examples.refs)))
    for shard in sorted({ref[0] for ref in examples.refs}):
        indices = [i for i, ref in enumerate(examples.refs) if ref[0] == shard]
        by_box = {(examples.boxes[i].key, examples.boxes[i].box_id): i for i in indices}
        for box, image in iter_person_images(locate(shard), [examples.boxes[i] for i in indices]):
            x1, y1, x2, y2 = (round(v) for v in box.xyxy)
            expected = image.crop((x1, y1, x2, y2))
            assert loaded[by_box[(box.key, box.box_id)]].tobytes() == expected.tobytes()


def test_abstain_rule_is_max_raw_logit_at_or_below_the_threshold(chain):
    import math

    import numpy as np

    from laion_audit.annotation.classifiers import current_checkpoint
    from laion_audit.annotation.crops import crop, iter_person_images, valid_boxes
    from laion_audit.annotation.person_annotation import label_shard
    from laion_audit.annotation.schemas import GENDER_CLASSES
    from laion_audit.models.image_classifier import TrainedClassifier
    from laion_audit.shards.sources import locate_shard

    folder, fingerprint = current_checkpoint(chain["root"] / "trained" / "gender_classifier")
    classifier = TrainedClassifier(folder, name="gender_classifier", fingerprint=fingerprint, random_weights=True,
                                   device="cpu")
    source = locate_shard(chain["settings"].shards_root, "00000")
    boxes_table = chain["store"].read_table("person_boxes", "00000")
    # Every valid crop in one batch, as label_shard batches them: the same logits to the last bit.
    pairs = list(iter_person_images(source, valid_boxes(boxes_table)))
    assert 0 < len(pairs) <= classifier.batch_size
    box = pairs[0][0]
    logits = classifier.predict_logits([crop(image, b) for b, image in pairs])[0]
    top = float(np.max(logits))

    def label_at(threshold):
        table = label_shard(source, boxes_table, classifier, GENDER_CLASSES, abstain_max_logit_at_or_below=threshold)
        return next(r["label"] for r in table.to_pylist() if (r["key"], r["box_id"]) == (box.key, box.box_id))

    argmax_label = GENDER_CLASSES[int(np.argmax(logits))]
    assert label_at(top) == "unclear"  # equal to the threshold: abstains
    assert label_at(math.nextafter(top, -math.inf)) == argmax_label  # just below: labelled
    assert label_at(None) == argmax_label


def test_label_markers_record_the_abstain_rule(chain):
    settings = chain["store"].read_marker("race_labels", "00000", restricted=True)["recipe"]["settings"]
    assert settings["abstain_max_logit_at_or_below"] is None
    assert "<=" in settings["abstain_rule"] and settings["abstain_class"] == "unclear"


def test_bias_transfer_assets_materialize_on_the_labelled_chain(chain):
    """Word-gender counts per shard and their table, CLIP bias per tiny CLIP, SD bias with the tiny pipeline, and
    the regressions, through the real jobs on this chain's labels (spec §7)."""
    from PIL import Image

    from laion_audit.annotation.schemas import GENDER_CLASSES
    from laion_audit.models.registry import clip_roles, sd_roles

    run, store, root = chain["run"], chain["store"], chain["root"]
    for shard in SHARDS:
        run("word_gender_counts_job", shard)
    # Per-shard cells are small demographic counts: restricted, owner-only.
    for shard in SHARDS:
        marker = store.read_marker("word_gender_counts", shard, restricted=True)
        assert marker is not None and set(marker["recipe"]["upstream"]) == {"samples", "gender_labels"}
        assert stat.S_IMODE(os.stat(store.data_path("word_gender_counts", shard, True)).st_mode) == 0o600
    run("observe_clip_weights_job")
    for role in clip_roles("tiny"):
        run("clip_model_bias_job", role)
    run("observe_sd_weights_job")
    # The random tiny detector's boxes on 64 px generations are 6-12 px: its top box with any side is kept, so
    # every generated image goes through the classifier (the paper's rule is tested on crafted detections).
    sd_config = {"categories": ["nurse", "engineer"], "images_per_prompt": 3, "min_kept": 1, "max_det": 1,
                 "min_side": 1.0}
    for role in sd_roles("tiny"):
        run("sd_model_bias_job", role, run_config={**QUIET, "ops": {"sd_model_bias": {"config": sd_config}}})
    result = run("bias_transfer_reports_job", run_config={
        **QUIET, "ops": {"word_gender_cooccurrence": {"config": {"min_count": 1}}}})
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} == {
        "word_gender_cooccurrence", "bias_transfer_regression"}
    reports = root / "store" / "reports"

    # The dataset table is the sum of the shard files (summed here with plain Python, sample rule).
    totals: dict[tuple[str, str], dict[str, float]] = {}
    for shard in SHARDS:
        for row in store.read_table("word_gender_counts", shard, True).to_pylist():
            if row["rule"] == "sample":
                totals.setdefault((row["word_list"], row["word"]), {}).setdefault(row["gender"], 0.0)
                totals[(row["word_list"], row["word"])][row["gender"]] += row["weighted"]
    table = json.loads((reports / "word_gender_cooccurrence.json").read_text())
    k = table["settings"]["k_min"]
    # Listed: words seen at least k times (min_count 1 is below k); a gender count in 1..k-1 hides the bias too.
    listed = {word for word, n in totals.items() if sum(n.values()) >= k}
    assert {(w["word_list"], w["word"]) for w in table["words"]} == listed
    for word in table["words"]:
        n = totals[(word["word_list"], word["word"])]
        n_f, n_m = n.get("female", 0.0), n.get("male", 0.0)
        if any(0 < count < k for count in (n_f, n_m)):
            assert word["bias"] is None and word["n_female"] is None and word["n_male"] is None
        else:
            assert word["bias"] == pytest.approx((n_f - n_m) / (n_f + n_m))
        for count in (word["n_female"], word["n_male"]):
            assert count is None or count == 0 or count >= k
    assert table["settings"]["counting_rules"] and set(table["inputs"]["word_gender_counts"]) == set(SHARDS)

    for role in clip_roles("tiny"):
        clip = json.loads((reports / f"clip_model_bias.{role}.json").read_text())
        assert clip["random_weights"] is True
        assert set(clip["recipe"]["gender_labels"]) == set(SHARDS)
        biases = [r["bias"] for r in clip["rows"]]
        if clip["summary"]["published"]:
            assert all(isinstance(b, float) for b in biases)
            assert clip["summary"]["n_female_images"] >= 10 and clip["summary"]["n_male_images"] >= 10
        else:
            assert all(b is None for b in biases) and "k=" in clip["summary"]["reason"]

    sd = json.loads((reports / "sd_model_bias.sd_tiny.json").read_text())
    assert [p["prompt"] for p in sd["prompts"]] == ["a photo of a nurse", "a photo of an engineer"]
    generations = pq.read_table(root / "store" / "restricted" / "sd_generations" / "sd_tiny.parquet").to_pylist()
    assert len(generations) == 6 and {g["seed"] for g in generations} == {0, 1, 2}
    assert stat.S_IMODE(os.stat(root / "store" / "restricted" / "sd_generations" / "sd_tiny.parquet").st_mode) == 0o600
    first = Image.open(generations[0]["image"])
    assert first.size == (64, 64) and first.text["prompt"] == generations[0]["prompt"]
    assert first.text["seed"] == str(generations[0]["seed"])
    assert sd["recipe"]["keep_rule"] == {"min_confidence_above": 0.35, "min_side_above": 1.0, "exactly_one": True,
                                         "max_det": 1}
    assert all(g["kept"] and g["label"] in GENDER_CLASSES for g in generations)
    for prompt in sd["prompts"]:
        kept = [g for g in generations if g["prompt"] == prompt["prompt"] and g["kept"]]
        assert prompt["kept"] == len(kept)
        labelled = [g["label"] for g in kept if g["label"] in ("female", "male")]
        assert prompt["female_share"] == (labelled.count("female") / len(labelled) if labelled else None)

    regression = json.loads((reports / "bias_transfer_regression.json").read_text())
    combos = {(f["family"], f["model"]) for f in regression["fits"]}
    assert {("clip", role) for role in clip_roles("tiny")} <= combos
    assert ("stable_diffusion", "sd_tiny") in combos
    for fit in regression["fits"]:
        assert (fit["r2"] is None) == (fit["reason"] is not None)
