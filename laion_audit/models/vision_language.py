"""Image-text-to-text models through transformers (AutoModelForImageTextToText + AutoProcessor).

One wrapper for the ensemble members and the captioner, so tiny InternVL folders and real
`OpenGVLab/InternVL3-*-hf` (or LLaVA-NeXT, Phi-3.5-vision) folders take the same path. Greedy decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image


class VisionLanguageModel:
    def __init__(self, folder: str | Path, *, name: str, fingerprint: str, random_weights: bool = False,
                 device: str | None = None):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.processor = AutoProcessor.from_pretrained(folder)
        self.processor.tokenizer.padding_side = "left"
        self.model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype).to(self.device).eval()
        self.name, self.fingerprint, self.random_weights = name, fingerprint, random_weights

    def generate(self, images: Sequence[Image.Image], prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        import torch

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
                                crop_to_patches=False).to(self.device)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return [text.strip() for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]
