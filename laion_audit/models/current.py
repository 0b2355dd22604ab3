"""The models as they are now, for the staleness test: staged weights by role, trained classifiers by asset.

A trained classifier is a model too (labels record its fingerprint), and it has inputs of its own: the
backbone it was fine-tuned from. When the staged backbone changes, the classifier is out of date and so is every
label it made, even though the checkpoint itself did not change; `problems` says so.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from laion_audit.models.image_classifier import META_FILE
from laion_audit.models.registry import MissingWeightsError, ModelRegistry

CLASSIFIER_SUFFIX = "_classifier"


class CurrentModels:
    def __init__(self, registry: ModelRegistry, trained_dir: str | Path):
        self.registry = registry
        self.trained_dir = Path(trained_dir)

    @cache  # noqa: B019 - one instance per staleness pass; the weights are hashed once per stat state anyway
    def fingerprint(self, role: str) -> str | None:
        if role.endswith(CLASSIFIER_SUFFIX):
            pointer = self.trained_dir / role / "current.json"
            return json.loads(pointer.read_text())["fingerprint"] if pointer.is_file() else None
        try:
            return self.registry.resolve(role).fingerprint
        except (MissingWeightsError, KeyError):
            return None

    def classifier_meta(self, role: str) -> dict:
        pointer = self.trained_dir / role / "current.json"
        if not pointer.is_file():
            return {}
        folder = self.trained_dir / role / json.loads(pointer.read_text())["folder"]
        meta_path = folder / META_FILE
        return json.loads(meta_path.read_text()) if meta_path.is_file() else {}

    def problems(self, role: str) -> list[str]:
        if not role.endswith(CLASSIFIER_SUFFIX):
            return []
        trained_on = self.classifier_meta(role).get("backbone_fingerprint")
        if trained_on is None:
            return []  # an imported checkpoint: its backbone is its own
        staged = self.fingerprint("classifier_backbone")
        if staged != trained_on:
            return [f"{role} was trained on classifier_backbone {trained_on[:12]}, staged is "
                    f"{str(staged)[:12]}: retrain it"]
        return []
