"""Image-text-to-text models through transformers (AutoModelForImageTextToText + AutoProcessor).

One wrapper for the ensemble members and the captioner, so tiny folders and real `OpenGVLab/InternVL3-*-hf`,
`llava-hf/llava-v1.6-*` and `Qwen/Qwen2.5-VL-*` folders take the same path. Only architectures transformers
implements natively load: remote code is never run, and a folder that would need it (Phi-3.5-vision) is refused
with the reason instead of being replaced by something else.

Decoding is greedy, and greedy means greedy: a checkpoint's generation_config.json may ship sampling settings or
a repetition penalty (Qwen2.5-VL-Instruct ships repetition_penalty 1.05, top_k 1, top_p 0.001, temperature 0.1),
and transformers fills every setting a caller leaves unset from it. So the model's generation config is replaced
by an explicit greedy one, and what was overridden is reported with the effective settings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

# Settings a checkpoint's generation_config.json may carry that change which tokens come out.
_DECODING_KEYS = ("do_sample", "num_beams", "num_beam_groups", "repetition_penalty", "temperature", "top_p",
                  "top_k", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff", "no_repeat_ngram_size",
                  "length_penalty", "diversity_penalty", "encoder_repetition_penalty", "penalty_alpha",
                  "bad_words_ids", "suppress_tokens", "begin_suppress_tokens", "sequence_bias",
                  "guidance_scale", "min_new_tokens", "min_length")
# Settings kept from the checkpoint: they say where a sequence ends, not which token is chosen.
_TOKEN_ID_KEYS = ("bos_token_id", "eos_token_id", "pad_token_id")
GREEDY = {"do_sample": False, "num_beams": 1, "repetition_penalty": 1.0, "temperature": None, "top_p": None,
          "top_k": None}
# Overrides a registry entry may set on top of GREEDY without making decoding non-greedy.
ALLOWED_GENERATION_OVERRIDES = frozenset(_TOKEN_ID_KEYS)


class UnsupportedModelError(RuntimeError):
    """A model folder whose architecture transformers does not implement natively (it would need remote code)."""


def greedy_settings(shipped: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """GREEDY plus the checkpoint's token ids and the registry's overrides (token ids only)."""
    overrides = dict(overrides or {})
    refused = sorted(set(overrides) - ALLOWED_GENERATION_OVERRIDES)
    if refused:
        raise ValueError(f"generation overrides {refused} would change greedy decoding; allowed: "
                         f"{sorted(ALLOWED_GENERATION_OVERRIDES)}")
    token_ids = {key: shipped[key] for key in _TOKEN_ID_KEYS if shipped.get(key) is not None}
    return {**GREEDY, **token_ids, **overrides}


def overridden_settings(shipped: Mapping[str, Any], effective: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint's decoding settings that the effective ones replace (what it would have run with)."""
    return {key: shipped[key] for key in _DECODING_KEYS
            if shipped.get(key) is not None and shipped[key] != effective.get(key)}


def check_native(folder: str | Path) -> None:
    """Refuse a folder whose config names no architecture transformers implements for image-text-to-text."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    config_file = Path(folder) / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    model_type = config.get("model_type")
    if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        import transformers

        remote = sorted(config.get("auto_map", {}).values())
        raise UnsupportedModelError(
            f"{folder}: model_type {model_type!r} has no native image-text-to-text class in transformers "
            f"{transformers.__version__}" + (f" (its remote code names {remote})" if remote else "")
            + "; remote code is not run. Use the registry's recorded substitute or stage a supported model."
        )


class VisionLanguageModel:
    """A loaded model with its processor settings and explicit greedy generation config.

    ``settings(max_new_tokens)`` is what a run records: processor kwargs, effective generation settings, and the
    checkpoint's own decoding settings that were overridden.
    """

    def __init__(self, folder: str | Path, *, name: str, fingerprint: str, random_weights: bool = False,
                 device: str | None = None, processor_kwargs: Mapping[str, Any] | None = None,
                 generation: Mapping[str, Any] | None = None):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor, GenerationConfig
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        check_native(folder)

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.processor = AutoProcessor.from_pretrained(folder)
        self.processor.tokenizer.padding_side = "left"
        self.model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype).to(self.device).eval()
        self.name, self.fingerprint, self.random_weights = name, fingerprint, random_weights
        self.processor_kwargs = dict(processor_kwargs or {})

        shipped = self.model.generation_config.to_dict()
        self.generation = greedy_settings(shipped, generation)
        self.overridden = overridden_settings(shipped, self.generation)
        # Replace, not update: generate() fills every unset value from model.generation_config.
        self.model.generation_config = GenerationConfig(**self.generation)

    def settings(self, max_new_tokens: int) -> dict[str, Any]:
        return {"processor": dict(self.processor_kwargs),
                "generation": {**self.generation, "max_new_tokens": max_new_tokens},
                "overridden_from_checkpoint": dict(self.overridden)}

    def generate(self, images: Sequence[Image.Image], prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        import torch
        from transformers import GenerationConfig

        if not images:
            return []
        texts = [
            self.processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}],
                add_generation_prompt=True,
            )
            for prompt in prompts
        ]
        inputs = self.processor(images=list(images), text=texts, return_tensors="pt", padding=True,
                                **self.processor_kwargs).to(self.device)
        config = GenerationConfig(**self.generation, max_new_tokens=max_new_tokens)
        with torch.inference_mode():
            output = self.model.generate(**inputs, generation_config=config)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return [text.strip() for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]
