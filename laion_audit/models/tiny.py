"""`laion-audit models init-tiny DIR`: small random-weight models of the paper profile's families, built offline.

No weights can be downloaded on the machines that run the tests, so the tiny profile exercises the very same
loaders (ultralytics, open_clip, transformers' native Qwen2.5-VL, LLaVA-NeXT and InternVL) on models built here
from configs, each saved in the layout of the real checkpoint: a `save_pretrained` folder with config,
safetensors, generation config, processor, tokenizer and chat template; an open_clip `local-dir:` folder; a YOLO
.pt. Tokenizers are byte-level BPEs trained here on the paper's prompts, with each family's special tokens.

Random weights answer nothing useful, so biases make them exercise the pipeline: the YOLO head's person logit is
raised so boxes appear at conf 0.25; an ensemble member's language head only emits space-prefixed letters, one
letter favoured along the member's own hidden state at the answer position (measured on probe prompts), so the
three families mostly, but not always, agree; the captioner's head only emits words, so captions read as text.
Everything is seeded: the same seed gives the same fingerprints. Outputs of these models are marked
``random_weights``.
"""

from __future__ import annotations

import json
from pathlib import Path

from laion_audit.models.prompts import CAPTION_PROMPT, GENDER_QUESTION, RACE_QUESTION, build_prompts
from laion_audit.models.registry import MANIFEST, TINY, TINY_CLIP_WIDTHS, manifest_entry

FIXED_DATE = "2026-01-01T00:00:00"
TINY_IMAGE_SIZE = 64
LETTERS = "ABCDEFGH"
FAVOURED_LETTER = "A"
TINY_HIDDEN = 32

INTERNVL_SPECIAL_TOKENS = ["<|endoftext|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>", "<|im_start|>",
                           "<|im_end|>"]
INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                       "<|image_pad|>", "<|video_pad|>"]
# Qwen2.5-VL-Instruct's template, cut to what the pipeline sends (one user turn: an image, then text).
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAVA_SPECIAL_TOKENS = ["<s>", "</s>", "<pad>", "<image>"]
# llava-v1.6-vicuna's template (USER: <image>\n... ASSISTANT:), cut the same way.
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %} "
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
# The shipped generation_config.json of Qwen2.5-VL-7B-Instruct samples with a repetition penalty; the tiny copy
# ships the same, so tests see the loader override it.
QWEN_SHIPPED_GENERATION = {"do_sample": True, "repetition_penalty": 1.05, "temperature": 0.1, "top_p": 0.001,
                           "top_k": 1}


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
    """open_clip's ViT-B-16-SigLIP recipe at toy size: sigmoid-loss logit bias (-10), a non-causal text tower
    pooled on its last token with a biased projection, eps 1e-6 norms, and average-pooled image tokens.

    The real image tower is timm's ``vit_base_patch16_siglip_224`` (attention-pool head); open_clip builds timm
    towers by registered name only, with no size override, so the tiny tower is open_clip's own ViT with the
    pooling of timm's ``siglip_gap`` variants.
    """
    return {
        "embed_dim": 32,
        "init_logit_bias": -10,
        "custom_text": True,
        "vision_cfg": {"image_size": TINY_IMAGE_SIZE, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32,
                       "pool_type": "avg", "norm_kwargs": {"eps": 1e-6}},
        "text_cfg": {"context_length": 16, "vocab_size": 256, "width": 32, "heads": 2, "layers": 1,
                     "no_causal_mask": True, "proj_bias": True, "pool_type": "last", "norm_kwargs": {"eps": 1e-6}},
    }


def build_tiny_open_clip(folder: Path, seed: int) -> None:
    """A SigLIP-style open_clip model saved as a `local-dir:` folder (open_clip_config.json + safetensors)."""
    import torch
    from open_clip.constants import INCEPTION_MEAN, INCEPTION_STD
    from open_clip.model import CustomTextCLIP
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    config = tiny_open_clip_config()
    model_args = {k: v for k, v in config.items() if k != "custom_text"}
    model = CustomTextCLIP(**model_args)
    folder.mkdir(parents=True, exist_ok=True)
    preprocess = {"mean": list(INCEPTION_MEAN), "std": list(INCEPTION_STD),
                  "interpolation": "bicubic", "resize_mode": "squash"}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": preprocess}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))


def tiny_clip_config(width: int) -> dict:
    """A CLIP (softmax-contrastive, causal text tower) at toy size, as the LAION-400M open_clip checkpoints are
    built: open_clip's own ViT and text transformer, with the real tokenizer's vocabulary and context length so
    ``open_clip.get_tokenizer`` gives the same SimpleTokenizer the real models use."""
    return {
        "embed_dim": width // 2,
        "vision_cfg": {"image_size": TINY_IMAGE_SIZE, "layers": 2, "width": width, "patch_size": 16,
                       "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": width // 2, "heads": 2, "layers": 1},
    }


def build_tiny_clip(folder: Path, seed: int, width: int) -> None:
    """A CLIP saved as an open_clip `local-dir:` folder, loaded back by models/clip_embedder.py."""
    import torch
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    config = tiny_clip_config(width)
    model = CLIP(**config)
    folder.mkdir(parents=True, exist_ok=True)
    preprocess = {"mean": list(OPENAI_DATASET_MEAN), "std": list(OPENAI_DATASET_STD), "interpolation": "bicubic",
                  "resize_mode": "shortest"}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": preprocess}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))


def _train_tokenizer(special_tokens: list[str], **named_tokens):
    """A byte-level BPE trained on the paper's prompts, wrapped as the fast tokenizer transformers saves."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [GENDER_QUESTION, RACE_QUESTION, CAPTION_PROMPT, "Answer with a single letter.",
              "answer " + " ".join(LETTERS), "the person is standing in front of a wall wearing a shirt and smiling"] * 20
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<unk>", *special_tokens],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", padding_side="left",
                                   **named_tokens)


def _emitted_tokens(tokenizer, emit: str) -> list[int]:
    vocab = tokenizer.get_vocab()
    if emit == "letters":
        return [vocab[f"Ġ{letter}"] for letter in LETTERS]
    return sorted(i for token, i in vocab.items() if token.startswith("Ġ") and len(token) > 2 and token[1:].isalpha())


def _probe_inputs(processor):
    """Two vote prompts on two images, as the pipeline sends them (chat template, processor)."""
    from PIL import Image

    prompts = build_prompts("gender", 2)
    texts = [processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": p.text}]}],
        add_generation_prompt=True) for p in prompts]
    images = [Image.new("RGB", (40, 90), (200, 30, 30)), Image.new("RGB", (120, 80), (30, 160, 60))]
    return processor(images=images, text=texts, return_tensors="pt", padding=True)


def _steer_head(model, tokenizer, processor, emit: str, seed: int) -> None:
    """Keep only the language-head rows of the emitted tokens (random, seeded); for letters, add to the favoured
    letter's row the mean direction of the model's own final hidden state at the answer position, so that letter
    usually wins while the random rows still win on some inputs."""
    import torch

    keep = _emitted_tokens(tokenizer, emit)
    head = model.get_output_embeddings().weight
    captured = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, i, o: captured.append(i[0][:, -1].detach()))
    with torch.no_grad():
        model(**_probe_inputs(processor))
    hook.remove()
    direction = torch.nn.functional.normalize(captured[0].mean(0), dim=0)
    noise = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        rows = torch.randn(len(keep), head.shape[1], generator=noise)
        head.zero_()
        head[keep] = rows * (2.0 if emit == "letters" else 20.0)
        if emit == "letters":
            head[tokenizer.convert_tokens_to_ids(f"Ġ{FAVOURED_LETTER}")] += 6.0 * direction


def _save(model, processor, folder: Path, shipped_generation: dict | None = None) -> None:
    tokenizer = processor.tokenizer
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    for key, value in (shipped_generation or {}).items():
        setattr(model.generation_config, key, value)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def _text_config(tokenizer, model_type: str, **extra) -> dict:
    return {"model_type": model_type, "hidden_size": TINY_HIDDEN, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": len(tokenizer),
            "max_position_embeddings": 2048, "tie_word_embeddings": False, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id, **extra}


def internvl_tokenizer():
    """A small local tokenizer with InternVL3's special tokens, image markers and chat tokens."""
    return _train_tokenizer(
        INTERNVL_SPECIAL_TOKENS, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens={"start_image_token": "<img>", "end_image_token": "</img>",
                              "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"})


def build_tiny_internvl(folder: Path, seed: int, emit: str) -> None:
    """A tiny InternVL (InternViT + Qwen2) with a GotOcr2 processor that tiles like InternVL3's."""
    import torch
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    tokenizer = internvl_tokenizer()
    config = InternVLConfig(
        vision_config={"hidden_size": TINY_HIDDEN, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": [TINY_IMAGE_SIZE, TINY_IMAGE_SIZE],
                       "patch_size": [16, 16]},
        text_config=_text_config(tokenizer, "qwen2"),
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        downsample_ratio=0.5,
    )
    size = {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size),
        video_processor=InternVLVideoProcessor(size=size),
        tokenizer=tokenizer,
        chat_template=INTERNVL_CHAT_TEMPLATE,
        image_seq_length=(TINY_IMAGE_SIZE // 16 // 2) ** 2,
    )
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config).eval()
    _steer_head(model, tokenizer, processor, emit, seed)
    _save(model, processor, folder)


def build_tiny_qwen2_5_vl(folder: Path, seed: int, emit: str = "letters") -> None:
    """A tiny Qwen2.5-VL (windowed ViT with 2x2 patch merging + Qwen2 with multimodal RoPE) and its processor,
    shipping Qwen2.5-VL-Instruct's sampling generation config."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = _train_tokenizer(QWEN_SPECIAL_TOKENS, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = tokenizer.convert_tokens_to_ids
    head_dim = TINY_HIDDEN // 2
    config = Qwen2_5_VLConfig(
        vision_config={"depth": 1, "hidden_size": TINY_HIDDEN, "intermediate_size": 64, "num_heads": 2,
                       "out_hidden_size": TINY_HIDDEN, "patch_size": 14, "spatial_merge_size": 2,
                       "temporal_patch_size": 2, "window_size": 56, "fullatt_block_indexes": [0]},
        text_config=_text_config(tokenizer, "qwen2_5_vl_text", rope_parameters={
            "rope_type": "default", "rope_theta": 1e6, "mrope_section": [head_dim // 8, 3 * head_dim // 16,
                                                                         3 * head_dim // 16]}),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    # Images are resized to 28-px multiples between 2x2 and 4x4 merged patches (4-16 image tokens).
    size = {"shortest_edge": 56 * 56, "longest_edge": 112 * 112}
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(size=size),
                                    video_processor=Qwen2VLVideoProcessor(size=size), tokenizer=tokenizer,
                                    chat_template=QWEN_CHAT_TEMPLATE)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    _steer_head(model, tokenizer, processor, emit, seed)
    _save(model, processor, folder, QWEN_SHIPPED_GENERATION)


def build_tiny_llava_next(folder: Path, seed: int, emit: str = "letters") -> None:
    """A tiny LLaVA-NeXT (CLIP vision tower, any-resolution grid with image newlines, Llama) and its processor."""
    import torch
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    tokenizer = _train_tokenizer(LLAVA_SPECIAL_TOKENS, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    side, patch = 32, 8
    pinpoints = [[side, 2 * side], [2 * side, side], [2 * side, 2 * side]]
    config = LlavaNextConfig(
        vision_config={"model_type": "clip_vision_model", "hidden_size": TINY_HIDDEN, "intermediate_size": 64,
                       "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": side, "patch_size": patch,
                       "projection_dim": TINY_HIDDEN},
        text_config=_text_config(tokenizer, "llama"),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=pinpoints, vision_feature_layer=-2, vision_feature_select_strategy="default",
    )
    image_processor = LlavaNextImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side},
                                              image_grid_pinpoints=pinpoints)
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
                                   vision_feature_select_strategy="default", chat_template=LLAVA_CHAT_TEMPLATE,
                                   image_token="<image>", num_additional_image_tokens=1)
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config).eval()
    _steer_head(model, tokenizer, processor, emit, seed)
    _save(model, processor, folder)


VLM_BUILDERS = {"internvl": build_tiny_internvl, "qwen2_5_vl": build_tiny_qwen2_5_vl,
                "llava_next": build_tiny_llava_next}


def init_tiny_models(out_dir: str | Path, seed: int = 0) -> dict[str, dict]:
    """Build every tiny-profile model into ``out_dir`` and write its manifest (role -> path, fingerprint)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = {entry.role: entry for entry in TINY}
    build_tiny_yolo(out_dir / entries["detector"].path, seed)
    build_tiny_open_clip(out_dir / entries["classifier_backbone"].path, seed)
    captioner = entries["captioner"]
    VLM_BUILDERS[captioner.family](out_dir / captioner.path, seed + 10, emit="words")
    for i in (1, 2, 3):
        member = entries[f"mllm_member_{i}"]
        VLM_BUILDERS[member.family](out_dir / member.path, seed + i, emit="letters")
    from laion_audit.models.text_classifier import build_tiny_hate_speech

    build_tiny_hate_speech(out_dir / entries["hate_speech"].path, seed + 20,
                           corpus=[GENDER_QUESTION, RACE_QUESTION, CAPTION_PROMPT, "a photo of a person at the beach"])
    for i, (size, width) in enumerate(TINY_CLIP_WIDTHS.items()):
        build_tiny_clip(out_dir / entries[f"clip_tiny_{size}"].path, seed + 30 + i, width)
    from laion_audit.models.diffusion import build_tiny_stable_diffusion

    build_tiny_stable_diffusion(out_dir / entries["sd_tiny"].path, seed + 40)
    from laion_audit.models.sentence_embedder import build_tiny_sentence_embedder

    build_tiny_sentence_embedder(out_dir / entries["caption_embedder"].path, seed + 30,
                                 corpus=[CAPTION_PROMPT, "a photo of a person at the beach playing football"])
    manifest = {
        role: manifest_entry(out_dir / entry.path, family=entry.family, path=entry.path, profile="tiny",
                             random_weights=True, source=entry.source, substitute_for=entry.substitute_for)
        for role, entry in entries.items()
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest
