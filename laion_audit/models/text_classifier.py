"""Hate-speech probabilities from a transformers sequence classifier (paper: pysentimiento's BERTweet HatEval
model, multi-label sigmoid over hateful / targeted / aggressive, max length 128).

The tiny profile builds a small random BERT with a locally trained WordPiece tokenizer and the same three labels,
saved in transformers format and loaded by this same code. pysentimiento's tweet preprocessing (user and URL
placeholders, emoji to text) is not applied: alt-texts are not tweets, and the package is not a dependency.
"""

from __future__ import annotations

import re
import string

from collections.abc import Sequence
from pathlib import Path

HATE_LABELS = ("hateful", "targeted", "aggressive")


class HateSpeechClassifier:
    def __init__(self, folder: str | Path, *, name: str, fingerprint: str, random_weights: bool = False,
                 device: str | None = None, max_length: int = 128, batch_size: int = 64):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder).to(self.device).eval()
        labels = self.model.config.id2label
        self.labels = tuple(labels[i].lower() for i in range(len(labels)))
        self.name, self.fingerprint, self.random_weights = name, fingerprint, random_weights
        self.max_length, self.batch_size = max_length, batch_size

    def hateful_probability(self, texts: Sequence[str]) -> list[float]:
        """P(hateful) per text (sigmoid of the `hateful` logit, as pysentimiento's multi-label output)."""
        import torch

        index = self.labels.index("hateful")
        out: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(list(texts[start : start + self.batch_size]), truncation=True,
                                       max_length=self.max_length, padding=True, return_tensors="pt").to(self.device)
                logits = self.model(**batch).logits.float()
                out.extend(torch.sigmoid(logits[:, index]).cpu().tolist())
        return out


def build_tiny_hate_speech(folder: Path, seed: int, corpus: Sequence[str]) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    fast = wordpiece_tokenizer(corpus)
    config = BertConfig(vocab_size=len(fast), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256, num_labels=len(HATE_LABELS),
                        id2label=dict(enumerate(HATE_LABELS)), label2id={l: i for i, l in enumerate(HATE_LABELS)},
                        problem_type="multi_label_classification")
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    fast.save_pretrained(folder)


def wordpiece_tokenizer(corpus: Sequence[str]):
    """A BERT WordPiece tokenizer over ``corpus``'s words, for tiny BERT-family models (hate speech, captions)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # A WordPiece vocabulary written out rather than trained: the trainer breaks frequency ties by hash, so the
    # same seed would give different tokenizer files. Whole corpus words, then single characters (word-initial and
    # "##" continuations), so any lower-case text tokenizes.
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted({w for text in corpus for w in re.findall(r"\w+|[^\w\s]", text.lower())})
    chars = sorted({c for w in words for c in w} | set(string.ascii_lowercase + string.digits))
    vocab = special + words + [c for c in chars if c not in words] + [f"##{c}" for c in chars]
    tokenizer = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    return fast
