"""The demographic classifiers: an open_clip image tower with a linear head, fully fine-tuned (Girrbach et al.).

A checkpoint is a folder: the backbone reference (open_clip name or `local-dir:` folder), the head and the
fine-tuned tower in safetensors, and the class names; its fingerprint is the sha256 of those weights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

HEAD_FILE = "classifier.safetensors"
META_FILE = "classifier.json"


def load_backbone(reference: str, pretrained: str | None = None):
    """(open_clip model, preprocess) for ``local-dir:<folder>`` or an open_clip name + pretrained tag."""
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(reference, pretrained=pretrained)
    return model, preprocess


def build_classifier(backbone, num_classes: int):
    import torch.nn as nn

    class ImageClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = backbone.visual
            self.head = nn.Linear(backbone.visual.output_dim, num_classes)

        def forward(self, images):
            return self.head(self.visual(images))

    return ImageClassifier()


def save_classifier(folder: Path, model, backbone_reference: str, class_names: Sequence[str], extra: dict) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous().cpu() for k, v in model.state_dict().items()}, str(folder / HEAD_FILE))
    meta = {"backbone": backbone_reference, "classes": list(class_names), **extra}
    (folder / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))


class TrainedClassifier:
    """Loads a saved classifier folder and returns class probabilities for crops."""

    def __init__(self, folder: str | Path, *, name: str, fingerprint: str, random_weights: bool,
                 device: str | None = None, batch_size: int = 64):
        import torch
        from safetensors.torch import load_file

        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text())
        backbone, self.preprocess = load_backbone(meta["backbone"])
        self.classes = tuple(meta["classes"])
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = build_classifier(backbone, len(self.classes))
        self.model.load_state_dict(load_file(str(folder / HEAD_FILE)))
        self.model.to(self.device).eval()
        self.name, self.fingerprint, self.random_weights = name, fingerprint, random_weights
        self.batch_size = batch_size
        self.meta = meta

    def predict_proba(self, crops: Sequence[Image.Image]):
        import numpy as np
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(crops), self.batch_size):
                batch = torch.stack([self.preprocess(c) for c in crops[start : start + self.batch_size]])
                out.append(torch.softmax(self.model(batch.to(self.device)).float(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), dtype="float32")
