import json
import shutil

import pytest
from PIL import Image

from laion_audit.models.fingerprint import fingerprint_path
from laion_audit.models.prompts import (
    GENDER_OPTIONS,
    RACE_OPTIONS,
    build_prompts,
    consensus,
    to_class,
)
from laion_audit.models.registry import MissingWeightsError, ModelRegistry
from laion_audit.models.tiny import init_tiny_models


def test_tiny_models_are_deterministic(tiny_models, tmp_path):
    again = init_tiny_models(tmp_path / "again", seed=0)
    first = json.loads((tiny_models / "manifest.json").read_text())
    assert {k: v["fingerprint"] for k, v in again.items()} == {k: v["fingerprint"] for k, v in first.items()}
    members = {first[f"mllm_member_{i}"]["fingerprint"] for i in (1, 2, 3)}
    assert len(members) == 3


def test_missing_weights_name_the_path_and_the_command(tmp_path):
    registry = ModelRegistry("tiny", tmp_path)
    with pytest.raises(MissingWeightsError, match=r"yolo11-tiny\.pt.*laion-audit models init-tiny"):
        registry.resolve("detector")
    with pytest.raises(MissingWeightsError, match="models fetch --profile paper"):
        ModelRegistry("paper", tmp_path).resolve("captioner")
    with pytest.raises(ValueError, match="unknown model profile"):
        ModelRegistry("huge", tmp_path)


def test_fingerprint_follows_the_bytes(tiny_models, tmp_path):
    copy = tmp_path / "yolo.pt"
    shutil.copy(tiny_models / "yolo11-tiny.pt", copy)
    before = fingerprint_path(copy)
    assert before == ModelRegistry("tiny", tiny_models).resolve("detector").fingerprint
    with copy.open("ab") as handle:
        handle.write(b"\0")
    assert fingerprint_path(copy) != before


def test_detector_finds_people_through_ultralytics(tiny_models):
    from skimage import data

    from laion_audit.models.person_detector import PersonDetector

    model = ModelRegistry("tiny", tiny_models).resolve("detector")
    detector = PersonDetector(model.path, name=model.name, fingerprint=model.fingerprint, max_det=5)
    image = Image.new("RGB", (640, 480), (90, 120, 90))
    image.paste(Image.fromarray(data.astronaut()).resize((300, 300)), (100, 100))
    boxes = detector.detect([image, image.resize((320, 240))])
    assert len(boxes) == 2 and boxes[0]
    for box in boxes[0]:
        # Random weights may return degenerate boxes; coordinates still lie in the original image.
        assert 0 <= box.x1 <= box.x2 <= 640 and 0 <= box.y1 <= box.y2 <= 480 and box.confidence >= 0.25


def test_vision_language_members_answer_with_letters(tiny_models):
    from laion_audit.models.vision_language import VisionLanguageModel

    model = ModelRegistry("tiny", tiny_models).resolve("mllm_member_1")
    vlm = VisionLanguageModel(model.path, name=model.name, fingerprint=model.fingerprint)
    crops = [Image.new("RGB", (40, 90), c) for c in ((200, 0, 0), (0, 200, 0), (0, 0, 200))]
    prompts = build_prompts("race", len(crops))
    answers = vlm.generate(crops, [p.text for p in prompts], 5)
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    assert all(p.parse(a) in RACE_OPTIONS for p, a in zip(prompts, answers))


def test_prompts_are_the_papers_with_a_seeded_shuffle():
    prompts = build_prompts("gender", 3)
    assert prompts == build_prompts("gender", 3)
    text = prompts[0].text
    assert text.startswith("What is the gender of the person in the image? Only answer if you are sure")
    assert text.endswith("\n\nAnswer with a single letter.")
    assert sorted(prompts[0].options) == sorted(GENDER_OPTIONS)
    assert "\nA. " in text and "\nD. " in text and "\nE. " not in text
    assert len({p.options for p in build_prompts("gender", 20)}) > 1


@pytest.mark.parametrize(
    ("answer", "letter_index"),
    [("A", 0), ("a", 0), (" b ", 1), ("D\nbecause", 3), ("A.", None), ("The answer is A", None), ("", None),
     (None, None), ("E", None)],
)
def test_answer_parsing_is_strict(answer, letter_index):
    prompt = build_prompts("gender", 1)[0]
    expected = None if letter_index is None else prompt.options[letter_index]
    assert prompt.parse(answer) == expected


def test_option_strings_map_to_classes():
    assert to_class("race", "Indian, Pakistani, or Bangladeshi") == "south_asian"
    assert to_class("gender", "both male and female people visible") == "mixed"
    assert to_class("gender", None) is None


@pytest.mark.parametrize(
    ("labels", "rule", "expected"),
    [
        (["male", "male", "male"], "unanimous_parseable", "male"),
        (["male", None, "male"], "unanimous_parseable", "male"),
        (["male", None, "male"], "unanimous_all", None),
        (["male", "female", "male"], "unanimous_parseable", None),
        (["male", "female", "male"], "majority", "male"),
        ([None, None, "male"], "majority", None),
        ([None, None, None], "unanimous_parseable", None),
    ],
)
def test_consensus_rules(labels, rule, expected):
    assert consensus(labels, rule) == expected


def test_unknown_consensus_rule_is_refused():
    with pytest.raises(ValueError, match="unknown consensus rule"):
        consensus(["male"], "vibes")


def test_a_swapped_weight_file_gets_a_new_fingerprint_despite_the_manifest(tiny_models, tmp_path):
    from laion_audit.models.tiny import build_tiny_yolo

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    registry = ModelRegistry("tiny", models)
    before = registry.resolve("detector").fingerprint
    build_tiny_yolo(models / "yolo11-tiny.pt", seed=7)
    after = ModelRegistry("tiny", models).resolve("detector").fingerprint
    assert after != before and after == fingerprint_path(models / "yolo11-tiny.pt")


def test_fingerprint_covers_every_file_of_a_model_folder(tiny_models, tmp_path):
    """Same weights, another chat template or tokenizer config: another model (its outputs differ)."""
    folder = tmp_path / "captioner"
    shutil.copytree(tiny_models / ModelRegistry("tiny", tiny_models).entry("captioner").path, folder)
    before = fingerprint_path(folder)
    weights = sorted(p.name for p in folder.iterdir() if p.suffix == ".safetensors")
    edited = next(p for p in sorted(folder.iterdir()) if p.suffix in (".json", ".jinja") and p.name not in weights)
    edited.write_text(edited.read_text() + " ")
    assert fingerprint_path(folder) != before
    (folder / ".cache").mkdir()
    (folder / ".cache" / "download.lock").write_text("hub bookkeeping")
    edited.write_text(edited.read_text()[:-1])
    assert fingerprint_path(folder) == before  # hub metadata is not part of the model


def test_a_recorded_fingerprint_is_trusted_only_while_the_stat_signature_matches(tiny_models, tmp_path):
    import json
    import os

    from laion_audit.models.fingerprint import stat_signature

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    path = models / "yolo11-tiny.pt"
    real = fingerprint_path(path)
    manifest = json.loads((models / "manifest.json").read_text())
    assert manifest["detector"]["stat_signature"] == stat_signature(path)  # copytree keeps sizes and mtimes
    assert manifest["detector"]["fingerprint"] == real
    assert ModelRegistry("tiny", models).resolve("detector").fingerprint == real
    # A recorded value with a matching signature is used as is (no hashing): proven with a value no hash gives.
    manifest["detector"].update(fingerprint="f" * 64, stat_signature=stat_signature(path))
    (models / "manifest.json").write_text(json.dumps(manifest))
    assert ModelRegistry("tiny", models).resolve("detector").fingerprint == "f" * 64
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # touched in place: hash again
    assert ModelRegistry("tiny", models).resolve("detector").fingerprint == real


def test_fetch_downloads_the_pinned_revision(monkeypatch, tmp_path):
    import huggingface_hub

    from laion_audit.models import fetch
    from laion_audit.models.registry import PAPER

    asked = {}
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, local_dir, revision=None: asked.setdefault(repo_id, revision))
    member = next(e for e in PAPER if e.role == "mllm_member_1")
    fetch._fetcher(member)(tmp_path / "m1")
    assert asked[member.source] == member.revision and len(member.revision) == 40
    backbone = next(e for e in PAPER if e.family == "open_clip")
    fetch._fetcher(backbone)(tmp_path / "backbone")
    assert asked[fetch.OPEN_CLIP_HUB_REPOS[backbone.source]] == fetch.OPEN_CLIP_HUB_REVISIONS[backbone.source]
    unpinned = next(e for e in PAPER if e.revision == "main" and e.family != "yolo")
    assert fetch.hub_revision(unpinned) is None
    pinned = [e.role for e in PAPER if fetch.hub_revision(e)]
    assert pinned == ["captioner", "mllm_member_1", "mllm_member_2", "mllm_member_3"]
