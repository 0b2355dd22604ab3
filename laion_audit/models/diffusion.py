"""Stable Diffusion models of the registry (`sd_*` roles): one loader for the paper's checkpoints and the tiny one.

The paper (spec §7) generates with ``StableDiffusionPipeline`` from ``CompVis/stable-diffusion-v1-4`` (and compares
v1-1). Here every model, real or tiny, is a ``save_pretrained`` folder loaded by ``StableDiffusionPipeline.
from_pretrained`` (offline): `models fetch` stages the hub snapshot, init-tiny builds a seeded random pipeline from
configs (UNet2DConditionModel, AutoencoderKL, CLIPTextModel with a locally written CLIPTokenizer, the PNDM
scheduler SD v1 ships with). So the tiny profile runs the very loader and call path the paper profile does.

Each image is generated from its own seed (a ``torch.Generator`` per image), so an image is reproducible from
(model fingerprint, prompt, seed, steps, size) alone, and a run can be resumed or extended per prompt.
The safety checker is not loaded (recorded as ``safety_checker: none``). The paper's script ran diffusers'
defaults, which include it; an image it blacks out has no person box and is not kept, so leaving it out can only
add kept images, never change a kept image's label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

TINY_SD_IMAGE_SIZE = 64
TINY_SD_CONTEXT = 64  # characters: the tiny tokenizer has no merges


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table (so any text tokenizes without <unk>)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def write_tiny_clip_tokenizer(folder: Path) -> None:
    """A CLIPTokenizer vocabulary of single characters (and their end-of-word forms) with no merges: every text
    tokenizes character by character through the real CLIPTokenizer code."""
    from transformers import CLIPTokenizer

    characters = list(_bytes_to_unicode().values())
    vocab = {token: i for i, token in enumerate(characters + [c + "</w>" for c in characters]
                                                + ["<|startoftext|>", "<|endoftext|>"])}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                              model_max_length=TINY_SD_CONTEXT, pad_token="<|endoftext|>")
    tokenizer.save_pretrained(folder)


def build_tiny_stable_diffusion(folder: Path, seed: int) -> None:
    """A seeded random StableDiffusionPipeline at toy size, saved with save_pretrained (64 px images, 16x16 latents)."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    tokenizer_dir = folder.with_name(folder.name + ".tokenizer")
    write_tiny_clip_tokenizer(tokenizer_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=TINY_SD_IMAGE_SIZE // 4, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, attention_head_dim=4,
        norm_num_groups=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 16, 16), latent_channels=4,
                        layers_per_block=1, norm_num_groups=8, sample_size=TINY_SD_IMAGE_SIZE)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=TINY_SD_CONTEXT, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    # SD v1's scheduler configuration (scheduler/scheduler_config.json of CompVis/stable-diffusion-v1-4).
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    pipeline = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipeline.save_pretrained(folder)
    import shutil

    shutil.rmtree(tokenizer_dir)


class StableDiffusionGenerator:
    """A registry SD model: ``generate(prompt, seeds)`` gives one image per seed."""

    def __init__(self, path: str | Path, *, name: str, fingerprint: str, random_weights: bool,
                 device: str | None = None):
        import torch
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()
        self.name, self.fingerprint, self.random_weights = name, fingerprint, random_weights
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.float16 if self.device == "cuda" else torch.float32  # the paper ran fp16 on GPU
        self.pipeline = StableDiffusionPipeline.from_pretrained(
            str(path), dtype=dtype, safety_checker=None, requires_safety_checker=False,
            local_files_only=True, low_cpu_mem_usage=False).to(self.device)
        self.pipeline.set_progress_bar_config(disable=True)
        self.dtype = str(dtype).removeprefix("torch.")

    def settings(self, steps: int | None, size: int | None) -> dict:
        """What decides an image besides prompt and seed; recorded with every generation."""
        return {"num_inference_steps": steps, "size": size, "dtype": self.dtype, "safety_checker": "none",
                "scheduler": type(self.pipeline.scheduler).__name__, "guidance_scale": 7.5}

    def generate(self, prompt: str, seeds: Sequence[int], *, steps: int | None = None, size: int | None = None,
                 batch_size: int = 8) -> list[Image.Image]:
        import torch

        images: list[Image.Image] = []
        kwargs = {} if steps is None else {"num_inference_steps": steps}
        if size is not None:
            kwargs.update(height=size, width=size)
        for start in range(0, len(seeds), batch_size):
            chunk = list(seeds[start:start + batch_size])
            generators = [torch.Generator(device=self.device).manual_seed(int(seed)) for seed in chunk]
            out = self.pipeline([prompt] * len(chunk), generator=generators, guidance_scale=7.5, **kwargs)
            images.extend(out.images)
        return images
