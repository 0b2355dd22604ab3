"""The paper profile end to end: every path its registry entries name, staged with a tiny model of that entry's
family, and votes -> classifiers -> labels -> captions materialized through the real Dagster jobs.

No real weights can be downloaded here, so each paper path holds a seeded tiny model built in the layout of the
real checkpoint (a YOLO .pt file, an open_clip `local-dir:` folder, `save_pretrained` folders). What the test
shows is that the paper profile resolves, loads and runs every family it names, and that every row says which
paper entry produced it (the member-1 substitute by its recorded name) with the fingerprint of the file or folder
that was actually staged.
"""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from dagster import AssetKey

from laion_audit.definitions import build_definitions
from laion_audit.ops.settings import Settings
from laion_audit.shards.store import ShardStore

from .dagster_harness import dagster_test_instance, register

SHARDS = ["00000", "00001", "00003", "00004"]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

# The paper profile's entries by role, written out here (not read from the registry) so a renamed entry fails.
YOLO = "yolo/yolo11l.pt"
OPEN_CLIP = "open_clip/ViT-B-16-SigLIP-webli"
INTERNVL = "hf/OpenGVLab--InternVL3-8B-hf"  # the captioner and ensemble member 3 share this folder
QWEN = "hf/Qwen--Qwen2.5-VL-7B-Instruct"
LLAVA = "hf/llava-hf--llava-v1.6-vicuna-7b-hf"
BERT = "hf/pysentimiento--bertweet-hate-speech"
GRANITE = "hf/ibm-granite--granite-embedding-english-r2"
MEMBER_NAMES = {
    "mllm_member_1": ("Qwen/Qwen2.5-VL-7B-Instruct (substitute for microsoft/Phi-3.5-vision-instruct)", QWEN),
    "mllm_member_2": ("llava-hf/llava-v1.6-vicuna-7b-hf", LLAVA),
    "mllm_member_3": ("OpenGVLab/InternVL3-8B-hf", INTERNVL),
}

# Paper defaults overridden for a CPU test on ~60 demo persons, each override result-relevant and so recorded
# in the recipes (the paper's values are what the profile-defaults test checks):
# - max_det 16 instead of 300: the random tiny detector fires everywhere; 300 boxes per image would mean
#   thousands of crops for three VLMs to vote on. 16 (not the tiny profile's 4) because the race recipe resamples
#   to floor(largest class / 4) of the *training split*, which needs enough race consensus crops over 8 classes.
# - votes sample_rate 1.0 instead of 0.01: 1% of the demo's persons is none or one crop, and the classifiers need
#   consensus crops in 2+ classes (race: its largest class >= 4 for the paper's floor(max / 4) resampling).
# - classifier epochs 1 instead of 10: the test shows the paper recipe runs, not that it converges.
# - caption max_new_tokens 6 instead of 256: the tiny captioner never emits an end token.
# loader_workers 0 is result-neutral: it only spares two shared cores the worker processes' start-up.
NO_WORKERS = {"loader_workers": 0}
OP_CONFIG = {
    "person_boxes": {"max_det": 16, **NO_WORKERS},
    "gender_votes": {"sample_rate": 1.0, **NO_WORKERS},
    "race_votes": {"sample_rate": 1.0, **NO_WORKERS},
    "gender_classifier": {"epochs": 1, **NO_WORKERS},
    "race_classifier": {"epochs": 1, **NO_WORKERS},
    "gender_labels": NO_WORKERS,
    "race_labels": NO_WORKERS,
    "person_captions": {"max_new_tokens": 6, **NO_WORKERS},
}
JOB_OPS = {
    "person_detection_job": ("person_boxes", "gender_votes", "race_votes"),
    "classifier_training_job": ("gender_classifier", "race_classifier"),
    "person_labels_job": ("gender_labels", "race_labels", "person_captions"),
}


def run_config(job: str) -> dict:
    return {**QUIET, "ops": {op: {"config": OP_CONFIG[op]} for op in JOB_OPS[job]}}


def sha256_of(path: Path) -> str:
    """The fingerprint as the design defines it, computed here: a file's bytes, or for a folder every file in
    sorted relative-path order, its relative path then its bytes."""
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(path.read_bytes())
        return digest.hexdigest()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def stage_paper_layout(models_dir: Path, seed: int = 0) -> None:
    """A tiny model of each paper family at the path the paper profile expects it."""
    from laion_audit.models.prompts import CAPTION_PROMPT, GENDER_QUESTION
    from laion_audit.models.text_classifier import build_tiny_hate_speech
    from laion_audit.models.tiny import (
        build_tiny_internvl,
        build_tiny_llava_next,
        build_tiny_open_clip,
        build_tiny_qwen2_5_vl,
        build_tiny_yolo,
    )

    (models_dir / YOLO).parent.mkdir(parents=True)
    build_tiny_yolo(models_dir / YOLO, seed)
    build_tiny_open_clip(models_dir / OPEN_CLIP, seed)
    build_tiny_qwen2_5_vl(models_dir / QWEN, seed + 1, emit="letters")
    build_tiny_llava_next(models_dir / LLAVA, seed + 2, emit="letters")
    # One folder serves as captioner and member 3, as InternVL3-8B does in the paper profile: it must answer the
    # vote prompt with letters for any crop to reach unanimous consensus, so its captions are letters too.
    build_tiny_internvl(models_dir / INTERNVL, seed + 3, emit="letters")
    build_tiny_hate_speech(models_dir / BERT, seed + 20, corpus=[GENDER_QUESTION, CAPTION_PROMPT])
    from laion_audit.models.sentence_embedder import build_tiny_sentence_embedder

    build_tiny_sentence_embedder(models_dir / GRANITE, seed + 30, corpus=[CAPTION_PROMPT])


@pytest.fixture(scope="module")
def paper_chain(tmp_path_factory, sample_shards):
    root = tmp_path_factory.mktemp("paper_chain")
    shutil.copytree(sample_shards, root / "shards")
    stage_paper_layout(root / "models")
    settings = Settings(home=str(root), shards_root=str(root / "shards"), store_root=str(root / "store"),
                        executor="in_process", register_batch=100, max_partitions_per_run=8, model_profile="paper",
                        models_dir=str(root / "models"), trained_dir=str(root / "trained"))
    defs = build_definitions(settings)

    def run(job, partition_key=None, config=None, **kwargs):
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, partition_key=partition_key, run_config=config or run_config(job), **kwargs)
        assert result.success, job
        return result

    with dagster_test_instance() as instance:
        register(instance, SHARDS)
        run("observe_model_weights_job", config=QUIET)
        for shard in SHARDS:
            run("shard_ingest_job", shard,
                config={**QUIET, "ops": {"alt_text_scores": {"config": {"hate_speech": True}}}})
            run("person_detection_job", shard)
        training = run("classifier_training_job")
        for shard in SHARDS:
            run("person_labels_job", shard)
        yield {"root": root, "models": root / "models", "store": ShardStore(str(root / "store")),
               "training": training}


def test_every_paper_path_is_staged_with_its_family(paper_chain):
    from laion_audit.models.registry import PAPER, clip_roles, sd_roles

    models = paper_chain["models"]
    # The CLIP and Stable Diffusion models whose bias is measured have tests of their own (test_clip_models.py,
    # test_bias_transfer.py).
    chain_entries = [entry for entry in PAPER if entry.role not in clip_roles("paper") + sd_roles("paper")]
    assert {entry.path for entry in chain_entries} == {YOLO, OPEN_CLIP, INTERNVL, QWEN, LLAVA, BERT, GRANITE}
    assert (models / YOLO).is_file() and (models / OPEN_CLIP / "open_clip_config.json").is_file()
    model_types = {path: json.loads((models / path / "config.json").read_text())["model_type"]
                   for path in (INTERNVL, QWEN, LLAVA, BERT)}
    assert model_types == {INTERNVL: "internvl", QWEN: "qwen2_5_vl", LLAVA: "llava_next", BERT: "bert"}
    assert (models / GRANITE / "modules.json").is_file()  # a sentence-transformers folder


def test_boxes_name_yolo11l_and_the_staged_file(paper_chain):
    store, models = paper_chain["store"], paper_chain["models"]
    rows = [r for s in SHARDS for r in store.read_table("person_boxes", s).to_pylist()]
    persons = [r for r in rows if r["box_id"] is not None]
    assert persons and any(r["valid"] for r in persons)
    assert {r["model_name"] for r in rows} == {"yolo11l.pt"}
    assert {r["model_fingerprint"] for r in rows} == {sha256_of(models / YOLO)}
    assert store.read_marker("person_boxes", "00000")["recipe"]["settings"]["max_det"] == 16


@pytest.mark.parametrize("question", ["gender", "race"])
def test_votes_name_the_three_paper_members_and_their_staged_folders(paper_chain, question):
    store, models = paper_chain["store"], paper_chain["models"]
    rows = [r for s in SHARDS for r in store.read_table(f"{question}_votes", s, restricted=True).to_pylist()]
    voted = [r for r in rows if r["status"] == "ok"]
    assert voted
    expected = {name: sha256_of(models / path) for name, path in MEMBER_NAMES.values()}
    assert {r["member"]: r["member_fingerprint"] for r in voted} == expected
    assert any(r["consensus"] is not None for r in voted)
    marker = store.read_marker(f"{question}_votes", "00000", restricted=True)
    assert marker["sample_rate"] == 1.0
    member_settings = marker["recipe"]["settings"]["members"]
    # The paper InternVL3 tiles (up to 12 patches); the Qwen2.5-VL member's shipped sampling settings are overridden.
    assert member_settings["mllm_member_3"]["processor"] == {"crop_to_patches": True, "max_patches": 12}
    assert member_settings["mllm_member_1"]["generation"]["do_sample"] is False
    assert member_settings["mllm_member_1"]["overridden_from_checkpoint"]["repetition_penalty"] == 1.05


@pytest.mark.parametrize("question", ["gender", "race"])
def test_classifiers_run_the_paper_recipe_on_the_staged_open_clip_folder(paper_chain, question):
    events = paper_chain["training"].get_asset_materialization_events()
    materialization = next(e.materialization for e in events if e.asset_key == AssetKey(f"{question}_classifier"))
    metadata = materialization.metadata
    recipe = metadata["recipe"].value
    assert recipe["name"] == f"paper-{question}"
    # The only hyper-parameter departure from the paper is the one this test's run config made.
    assert [d for d in metadata["deviations_from_paper"].value if "instead of the paper's" in d] == [
        "epochs 1 instead of the paper's 10: set in the run config"]
    folder = Path(metadata["checkpoint"].value)
    meta = json.loads((folder / "classifier.json").read_text())
    assert meta["backbone"] == f"local-dir:{paper_chain['models'] / OPEN_CLIP}"
    assert meta["backbone_fingerprint"] == sha256_of(paper_chain["models"] / OPEN_CLIP)
    version = materialization.tags["dagster/data_version"]
    labels = [r for s in SHARDS
              for r in paper_chain["store"].read_table(f"{question}_labels", s, restricted=True).to_pylist()]
    assert any(r["label"] is not None for r in labels)
    assert {r["model_fingerprint"] for r in labels} == {version}


def test_captions_name_internvl3_and_record_its_tiling(paper_chain):
    store, models = paper_chain["store"], paper_chain["models"]
    rows = [r for s in SHARDS for r in store.read_table("person_captions", s, restricted=True).to_pylist()]
    captioned = [r for r in rows if r["caption"] is not None]
    assert captioned and all(r["caption"].strip() for r in captioned)
    assert {r["model_name"] for r in rows} == {"OpenGVLab/InternVL3-8B-hf"}
    assert {r["model_fingerprint"] for r in rows} == {sha256_of(models / INTERNVL)}
    settings = store.read_marker("person_captions", "00000", restricted=True)["recipe"]["settings"]
    assert settings["max_new_tokens"] == 6
    assert settings["processor"] == {"crop_to_patches": True, "max_patches": 12}


def test_hate_speech_scores_come_from_the_staged_bert(paper_chain):
    scores = paper_chain["store"].read_table("alt_text_scores", "00000").to_pylist()
    assert {r["hate_model_fingerprint"] for r in scores} == {sha256_of(paper_chain["models"] / BERT)}
