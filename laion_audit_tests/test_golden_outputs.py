"""Golden outputs: the seeded tiny models on fixed images give results pinned in snapshots/golden_outputs.json.

The tiny profile is built twice in one run (the builders must be deterministic before anything is pinned),
then each family's output on fixed inputs is compared with the pinned one: person boxes from the tiny YOLO11,
each ensemble member's raw answer to the vote prompts on fixed crops, a classifier's logits, probabilities and
label from the tiny open_clip tower with a fixed linear head, the tiny captioner's greedy caption, and the tiny
hate-speech BERT's probability. An upgrade of torch, transformers, open_clip, ultralytics or Pillow that changes
any of these fails here instead of silently changing an audit. Floats are compared at 1e-4 relative (CPU kernels
may differ in the last bits between thread counts), text and letters exactly. When a change is intended, rerun
with LAION_AUDIT_UPDATE_SNAPSHOTS=1 and commit the snapshot.

Fingerprints are not pinned: a library may serialize the same weights differently without changing a result.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SNAPSHOT = Path(__file__).parent / "snapshots" / "golden_outputs.json"
REL, ABS = 1e-4, 1e-5
LIBRARIES = ("torch", "transformers", "open_clip_torch", "ultralytics", "pillow", "tokenizers", "safetensors")


def fixed_image() -> Image.Image:
    """160x120: colour gradients, a seeded noise field and a red block where a person might stand."""
    y, x = np.mgrid[0:120, 0:160]
    pixels = np.stack([x * 255 // 159, y * 255 // 119, (x + y) * 3 % 256], axis=-1).astype(np.int16)
    pixels += np.random.default_rng(0).integers(-20, 21, size=pixels.shape)
    pixels[25:110, 60:100] = (190, 50, 40)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def fixed_crops() -> list[Image.Image]:
    image = fixed_image()
    return [image.crop((60, 25, 100, 110)), image.crop((10, 5, 70, 60))]


def fixed_head(classes: int, width: int):
    """The linear head's weights from numpy's seeded PCG64 (stable across numpy versions), not torch's init."""
    rng = np.random.default_rng(7)
    return (rng.standard_normal((classes, width)).astype("float32"),
            rng.standard_normal(classes).astype("float32") * 0.1)


def golden_outputs(models_dir: Path, work_dir: Path) -> dict:
    """Every tiny family's output on the fixed inputs, as JSON-ready values."""
    import torch

    from laion_audit.annotation.crops import PersonBox
    from laion_audit.annotation.person_annotation import highlight
    from laion_audit.annotation.schemas import GENDER_CLASSES
    from laion_audit.models.image_classifier import (
        TrainedClassifier,
        build_classifier,
        load_backbone,
        save_classifier,
    )
    from laion_audit.models.person_detector import PersonDetector
    from laion_audit.models.prompts import CAPTION_PROMPT, build_prompts
    from laion_audit.models.registry import ModelRegistry
    from laion_audit.models.text_classifier import HateSpeechClassifier
    from laion_audit.models.vision_language import VisionLanguageModel

    registry = ModelRegistry("tiny", models_dir)
    out: dict = {}

    detector_model = registry.resolve("detector")
    detector = PersonDetector(detector_model.path, name="golden", fingerprint="-", max_det=4, device="cpu")
    out["boxes"] = [[d.x1, d.y1, d.x2, d.y2, d.confidence] for d in detector.detect([fixed_image()])[0]]

    crops = fixed_crops()
    prompts = build_prompts("gender", len(crops)) + build_prompts("race", len(crops))
    out["votes"] = {}
    for role in ("mllm_member_1", "mllm_member_2", "mllm_member_3"):
        model = registry.resolve(role)
        vlm = VisionLanguageModel(model.path, name=role, fingerprint="-", device="cpu",
                                  processor_kwargs=model.entry.processor_settings)
        answers = vlm.generate(crops + crops, [p.text for p in prompts], max_new_tokens=5)
        out["votes"][f"{role} ({model.entry.family})"] = {
            "raw_answers": answers, "parsed": [p.parse(a) for p, a in zip(prompts, answers, strict=True)]}

    backbone_dir = registry.resolve("classifier_backbone").path
    backbone, _ = load_backbone(f"local-dir:{backbone_dir}")
    classifier_model = build_classifier(backbone, len(GENDER_CLASSES))
    weight, bias = fixed_head(len(GENDER_CLASSES), classifier_model.head.in_features)
    with torch.no_grad():
        classifier_model.head.weight.copy_(torch.from_numpy(weight))
        classifier_model.head.bias.copy_(torch.from_numpy(bias))
    folder = work_dir / "fixed_classifier"
    save_classifier(folder, classifier_model, f"local-dir:{backbone_dir}", GENDER_CLASSES, extra={})
    classifier = TrainedClassifier(folder, name="golden", fingerprint="-", random_weights=True, device="cpu")
    logits = classifier.predict_logits(crops)
    out["classifier"] = {"logits": logits.tolist(), "probabilities": classifier.probabilities(logits).tolist(),
                         "labels": [GENDER_CLASSES[int(i)] for i in logits.argmax(axis=1)]}

    captioner_model = registry.resolve("captioner")
    captioner = VisionLanguageModel(captioner_model.path, name="captioner", fingerprint="-", device="cpu",
                                    processor_kwargs=captioner_model.entry.processor_settings)
    marked = highlight(fixed_image(), PersonBox("k", 0, (60.0, 25.0, 100.0, 110.0)))
    out["caption"] = captioner.generate([marked], [CAPTION_PROMPT], max_new_tokens=12)[0]

    hate = registry.resolve("hate_speech")
    scorer = HateSpeechClassifier(hate.path, name="hate", fingerprint="-", device="cpu")
    out["hate_prob"] = scorer.hateful_probability(["a photo of a person at the beach", "the person is smiling"])
    return out


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory, tiny_models):
    """Outputs of the session's tiny models and of a second build of them in the same run."""
    from laion_audit.models.tiny import init_tiny_models

    second = tmp_path_factory.mktemp("tiny_models_again")
    manifest = init_tiny_models(second, seed=0)
    first_manifest = json.loads((tiny_models / "manifest.json").read_text())
    return {
        "fingerprints": ({r: e["fingerprint"] for r, e in first_manifest.items()},
                         {r: e["fingerprint"] for r, e in manifest.items()}),
        "outputs": (golden_outputs(tiny_models, tmp_path_factory.mktemp("golden_a")),
                    golden_outputs(second, tmp_path_factory.mktemp("golden_b"))),
    }


def test_two_builds_are_identical(two_builds):
    first, second = two_builds["fingerprints"]
    assert first == second
    a, b = two_builds["outputs"]
    assert a == b  # same process, same threads: bit-identical


def test_outputs_are_not_degenerate(two_builds):
    """A pin of empty outputs would pin nothing: each family produced something to compare."""
    outputs = two_builds["outputs"][0]
    assert outputs["boxes"] and outputs["caption"].strip()
    assert all(any(parsed) for parsed in (v["parsed"] for v in outputs["votes"].values()))
    assert len(outputs["votes"]) == 3


def _matches(actual, expected, path="") -> list[str]:
    """Where ``actual`` differs from ``expected``: floats beyond REL/ABS, anything else exactly."""
    if isinstance(expected, float) and isinstance(actual, (int, float)):
        return [] if actual == pytest.approx(expected, rel=REL, abs=ABS) else [f"{path}: {actual!r} != {expected!r}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(actual) != set(expected):
            return [f"{path}: keys {sorted(actual)} != {sorted(expected)}"]
        return [m for k in expected for m in _matches(actual[k], expected[k], f"{path}.{k}")]
    if isinstance(expected, list) and isinstance(actual, list):
        if len(actual) != len(expected):
            return [f"{path}: {len(actual)} items != {len(expected)}: {actual!r}"]
        return [m for i, (x, y) in enumerate(zip(actual, expected, strict=True))
                for m in _matches(x, y, f"{path}[{i}]")]
    return [] if actual == expected else [f"{path}: {actual!r} != {expected!r}"]


def _library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def test_outputs_match_the_pinned_snapshot(two_builds):
    current = two_builds["outputs"][0]
    if os.environ.get("LAION_AUDIT_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps({"recorded_with": _library_versions(), "outputs": current}, indent=1,
                                       sort_keys=True) + "\n")
    pinned = json.loads(SNAPSHOT.read_text())
    mismatches = _matches(current, pinned["outputs"])
    assert not mismatches, (
        f"tiny-model outputs changed (pinned with {pinned['recorded_with']}, now {_library_versions()}):\n"
        + "\n".join(mismatches[:20])
        + "\nif the change is intended, rerun with LAION_AUDIT_UPDATE_SNAPSHOTS=1 and commit the snapshot"
    )


def test_the_comparison_catches_a_changed_output():
    pinned = {"boxes": [[1.0, 2.0, 30.5, 40.25, 0.875]], "caption": "the person", "votes": {"m": ["A", None]}}
    assert _matches(json.loads(json.dumps(pinned)), pinned) == []
    assert _matches({**pinned, "boxes": [[1.0, 2.0, 30.5, 40.26, 0.875]]}, pinned)  # beyond 1e-4 relative
    assert _matches({**pinned, "boxes": [[1.0, 2.0, 30.5, 40.2500001, 0.875]]}, pinned) == []
    assert _matches({**pinned, "caption": "the person "}, pinned)
    assert _matches({**pinned, "votes": {"m": ["B", None]}}, pinned)
    assert _matches({**pinned, "boxes": []}, pinned)
