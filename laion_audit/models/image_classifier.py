"""The demographic classifiers: an open_clip image tower with a linear head, fully fine-tuned (Girrbach et al.).

A checkpoint is a folder: the backbone reference (open_clip name or `local-dir:` folder), the head and the
fine-tuned tower in safetensors, and the class names; its fingerprint is the sha256 of those weights.

``classifier.json`` (META_FILE) holds what loading and lineage need plus small-cell-suppressed metrics.
``training_record.json`` (RECORD_FILE) holds what describes individual people or small demographic cells (split
lists of (shard, key, box_id), per-class counts, full confusion matrices): it is written owner-only (0o600) in
an owner-only folder (0o700) and must not be shipped when a checkpoint is shared (copy the weights and
classifier.json only). The fingerprint covers weight files only, so neither JSON file changes it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

HEAD_FILE = "classifier.safetensors"
META_FILE = "classifier.json"
RECORD_FILE = "training_record.json"


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


def save_classifier(folder: Path, model, backbone_reference: str, class_names: Sequence[str], extra: dict,
                    record: dict | None = None) -> None:
    """Weights + classifier.json (``extra`` must already be publishable); ``record`` goes to RECORD_FILE."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    save_file({k: v.contiguous().cpu() for k, v in model.state_dict().items()}, str(folder / HEAD_FILE))
    write_meta(folder, {"backbone": backbone_reference, "classes": list(class_names), **extra})
    if record:
        write_training_record(folder, record)


def write_meta(folder: Path, meta: dict) -> None:
    """Replace classifier.json atomically (a reader never sees half a file)."""
    tmp = folder / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
    tmp.replace(folder / META_FILE)


def write_training_record(folder: Path, record: dict) -> None:
    """Write RECORD_FILE owner-only: created 0o600 (never readable by others, even for a moment), then replaced."""
    tmp = folder / f".{RECORD_FILE}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            fd = -1
            json.dump(record, handle, indent=1, sort_keys=True)
    finally:
        if fd >= 0:
            os.close(fd)
    tmp.replace(folder / RECORD_FILE)


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

    def predict_logits(self, crops: Sequence[Image.Image]):
        """Raw head outputs (N, classes) as float32 numpy: what the paper's abstain rule compares."""
        import numpy as np
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(crops), self.batch_size):
                batch = torch.stack([self.preprocess(c) for c in crops[start : start + self.batch_size]])
                out.append(self.model(batch.to(self.device)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), dtype="float32")

    def probabilities(self, logits):
        """Class probabilities from logits: the Dirichlet mean α/S for an evidentially trained classifier (its
        outputs are evidence, not log-odds), softmax otherwise (and for checkpoints that do not say)."""
        import numpy as np

        logits = np.asarray(logits, dtype="float64")
        if (self.meta.get("output") or {}).get("probabilities") == "dirichlet_mean":
            alpha = np.logaddexp(0.0, logits) + 1.0  # softplus evidence + 1
            return (alpha / alpha.sum(axis=-1, keepdims=True)).astype("float32")
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return (shifted / shifted.sum(axis=-1, keepdims=True)).astype("float32")

    def predict_proba(self, crops: Sequence[Image.Image]):
        return self.probabilities(self.predict_logits(crops))
