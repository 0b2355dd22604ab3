"""A CLIP model of the registry (`clip_*` roles) as an embedder of images, texts and zero-shot words.

One loader for every CLIP the analyses compare: a tiny model is an open_clip `local-dir:` folder built by
init-tiny; a paper entry ("<open_clip name>/<pretrained tag>") is loaded by open_clip from the folder `models
fetch` downloaded it into (used as open_clip's cache_dir, so no network is needed afterwards).

Embeddings come back as float32 numpy arrays, L2-normalised unless ``normalize=False`` (facial impressions
compute cosines on the raw embeddings in float64, as Wolfe et al. do).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

LOCAL_CONFIG = "open_clip_config.json"


def _zero_shot_templates():
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

    return SIMPLE_IMAGENET_TEMPLATES


class ClipEmbedder:
    def __init__(self, path: str | Path, source: str, *, name: str, fingerprint: str, random_weights: bool,
                 device: str | None = None):
        import open_clip
        import torch

        self.name, self.fingerprint, self.random_weights = name, fingerprint, random_weights
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        path = Path(path)
        if (path / LOCAL_CONFIG).is_file():
            reference = f"local-dir:{path}"
            model, _, preprocess = open_clip.create_model_and_transforms(reference)
            self.tokenizer = open_clip.get_tokenizer(reference)
        else:
            architecture, _, tag = source.partition("/")
            model, _, preprocess = open_clip.create_model_and_transforms(architecture, pretrained=tag,
                                                                         cache_dir=str(path))
            self.tokenizer = open_clip.get_tokenizer(architecture)
        self.model = model.eval().to(self.device)
        self.preprocess = preprocess

    def _run(self, batches, encode, normalize: bool) -> np.ndarray:
        import torch

        chunks = []
        with torch.inference_mode(), torch.autocast(self.device, enabled=self.device == "cuda"):
            for batch in batches:
                features = encode(batch.to(self.device)).float()
                if normalize:
                    features = torch.nn.functional.normalize(features, dim=-1)
                chunks.append(features.cpu().numpy())
        width = self.model.text_projection.shape[-1] if hasattr(self.model, "text_projection") else 0
        return np.concatenate(chunks) if chunks else np.zeros((0, width), dtype=np.float32)

    def image_embeddings(self, images: Sequence[Image.Image], *, batch_size: int = 64,
                         normalize: bool = True) -> np.ndarray:
        import torch

        def batches():
            for start in range(0, len(images), batch_size):
                yield torch.stack([self.preprocess(image.convert("RGB")) for image in images[start:start + batch_size]])

        return self._run(batches(), self.model.encode_image, normalize)

    def text_embeddings(self, texts: Sequence[str], *, batch_size: int = 256, normalize: bool = True) -> np.ndarray:
        def batches():
            for start in range(0, len(texts), batch_size):
                yield self.tokenizer(list(texts[start:start + batch_size]))

        return self._run(batches(), self.model.encode_text, normalize)

    def word_embeddings(self, words: Sequence[str], templates=None) -> np.ndarray:
        """open_clip's zero-shot class embedding of each word: every template filled with the word, each embedding
        L2-normalised, averaged, and the mean normalised again (default: the 7 SIMPLE_IMAGENET_TEMPLATES)."""
        templates = list(templates or _zero_shot_templates())
        texts = [template(word) if callable(template) else template.format(word)
                 for word in words for template in templates]
        embeddings = self.text_embeddings(texts).reshape(len(words), len(templates), -1).mean(axis=1)
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        return embeddings / np.where(norms == 0, 1, norms)

    def parameter_counts(self) -> dict[str, float]:
        """Image and text tower sizes in millions of parameters, measured on the loaded model."""
        visual = sum(p.numel() for p in self.model.visual.parameters())
        total = sum(p.numel() for p in self.model.parameters())
        return {"image_mparams": visual / 1e6, "text_mparams": (total - visual) / 1e6}
