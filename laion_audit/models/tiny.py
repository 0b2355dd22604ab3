"""`laion-audit models init-tiny DIR`: small random-weight models of the paper's architectures, built offline.

No weights can be downloaded on the machines that run the tests, so the tiny profile exercises the very same
loaders (ultralytics, open_clip, transformers' native InternVL) on models built here from configs. Random
weights answer nothing useful, so two biases make them exercise the pipeline: the YOLO head's person logit is
raised so boxes appear at conf 0.25, and the tiny InternVL language heads only emit space-prefixed letters
(ensemble members) or words (captioner), so answers parse and captions read as text. Everything is seeded:
the same seed gives the same fingerprints. Outputs of these models are marked ``random_weights``.
"""

from __future__ import annotations

import json
from pathlib import Path

from laion_audit.models.fingerprint import fingerprint_path
from laion_audit.models.prompts import CAPTION_PROMPT, GENDER_QUESTION, RACE_QUESTION
from laion_audit.models.registry import MANIFEST, TINY

FIXED_DATE = "2026-01-01T00:00:00"
TINY_IMAGE_SIZE = 64
INTERNVL_SPECIAL_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>", "<video>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LETTERS = "ABCDEFGH"


def build_tiny_yolo(path: Path, seed: int) -> None:
    import torch
    from ultralytics import YOLO

    torch.manual_seed(seed)
    model = YOLO("yolo11n.yaml")
    detect = model.model.model[-1]
    with torch.no_grad():
        for branch in detect.cv3:
            branch[-1].bias[0] = 8.0
    model.model.names = {0: "person", **{i: f"class{i}" for i in range(1, detect.nc)}}
    model.save(str(path))
    # ultralytics stamps the save time into the checkpoint; pin it so the fingerprint depends on weights only.
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    checkpoint["date"] = FIXED_DATE
    torch.save(checkpoint, path)


def tiny_open_clip_config() -> dict:
    return {
        "embed_dim": 32,
        "vision_cfg": {"image_size": TINY_IMAGE_SIZE, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }


def build_tiny_open_clip(folder: Path, seed: int) -> None:
    """An open_clip model saved as a `local-dir:` folder (open_clip_config.json + open_clip_model.safetensors)."""
    import open_clip
    import torch
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    config = tiny_open_clip_config()
    model = CLIP(**config)
    folder.mkdir(parents=True, exist_ok=True)
    preprocess = {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": preprocess}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [GENDER_QUESTION, RACE_QUESTION, CAPTION_PROMPT, "Answer with a single letter.",
              "answer " + " ".join(LETTERS), "the person is standing in front of a wall wearing a shirt and smiling"] * 20
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<unk>", "<|endoftext|>", *INTERNVL_SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens={"start_image_token": "<img>", "end_image_token": "</img>",
                              "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"},
    )
    fast.padding_side = "left"
    return fast


def build_tiny_internvl(folder: Path, seed: int, emit: str, member: int = 0) -> None:
    """A tiny InternVL (InternViT + Qwen2) saved in transformers format with its processor.

    ``emit`` = "letters" keeps only the language-head rows of " A".." H" (an ensemble member that always
    answers with letters, chosen by its random weights from the image and prompt); "words" keeps the rows of
    space-prefixed word tokens (a captioner whose output reads as words). Ensemble members share one base
    model and differ by seeded noise (``member``) on those rows, so they mostly, but not always, agree.
    """
    import torch
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    tokenizer = _train_tokenizer()
    vocab = tokenizer.get_vocab()
    if emit == "letters":
        keep = [vocab[f"Ġ{letter}"] for letter in LETTERS]
    else:
        keep = [i for token, i in vocab.items() if token.startswith("Ġ") and len(token) > 2 and token[1:].isalpha()]
    config = InternVLConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": [TINY_IMAGE_SIZE, TINY_IMAGE_SIZE], "patch_size": [16, 16]},
        text_config={"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": len(tokenizer),
                     "max_position_embeddings": 2048, "tie_word_embeddings": False},
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        downsample_ratio=0.5,
    )
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config).eval()
    with torch.no_grad():
        head = model.lm_head.weight
        mask = torch.zeros(head.shape[0], dtype=torch.bool)
        mask[keep] = True
        head[~mask] = 0.0
        if member:
            noise = torch.Generator().manual_seed(seed * 1000 + member)
            head[mask] += 0.5 * head[mask].std() * torch.randn(head[mask].shape, generator=noise)
        head[mask] *= 20.0
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    size = {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False),
        video_processor=InternVLVideoProcessor(size=size),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        image_seq_length=(TINY_IMAGE_SIZE // 16 // 2) ** 2,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def init_tiny_models(out_dir: str | Path, seed: int = 0) -> dict[str, dict]:
    """Build every tiny-profile model into ``out_dir`` and write its manifest (role -> path, fingerprint)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = {entry.role: entry for entry in TINY}
    build_tiny_yolo(out_dir / entries["detector"].path, seed)
    build_tiny_open_clip(out_dir / entries["classifier_backbone"].path, seed)
    build_tiny_internvl(out_dir / entries["captioner"].path, seed + 10, emit="words")
    for i in (1, 2, 3):
        build_tiny_internvl(out_dir / entries[f"mllm_member_{i}"].path, seed + 1, emit="letters", member=i)
    from laion_audit.models.text_classifier import build_tiny_hate_speech

    build_tiny_hate_speech(out_dir / entries["hate_speech"].path, seed + 20,
                           corpus=[GENDER_QUESTION, RACE_QUESTION, CAPTION_PROMPT, "a photo of a person at the beach"])
    manifest = {
        role: {"family": entry.family, "path": entry.path, "profile": "tiny", "random_weights": True,
               "fingerprint": fingerprint_path(out_dir / entry.path)}
        for role, entry in entries.items()
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest
