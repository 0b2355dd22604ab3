"""The paper profile's GPU models through the project's own wrappers, each against a raw forward pass of the same
model on pre-made tensors, measured in the same run.

Random-weight models built from the real architectures' configurations (nothing is downloaded):
  detector    YOLO11-l from ultralytics' yolo11l.yaml through PersonDetector.detect (ultralytics predict:
              letterbox, forward, NMS, person class only) on PIL images, vs the predictor's own fused network on
              a pre-made (batch, 3, 640, 640) tensor already on the device. Reports images/s and boxes per image.
  classifier  open_clip 'ViT-B-16-SigLIP' (pretrained=None) with a linear head, through
              TrainedClassifier.predict_logits (open_clip preprocess of each PIL crop, batching, forward), vs the
              classifier on a pre-made (batch, 3, 224, 224) tensor. Reports crops/s.
  captioner   an InternVL3-8B-size model (InternViT-300M + Qwen2.5-7B shapes, InternVL3-8B-hf's configuration
              written out below; the tokenizer is a small local BPE, so token *values* are meaningless but
              the sequence lengths, tiling (up to 12 448-px tiles + thumbnail, 256 tokens each) and compute
              are InternVL3-8B's) through VisionLanguageModel.generate (chat template, processor tiling,
              greedy generate, decode) vs model.generate on the processor's tensors already on the device.
              Reports captions/s at exactly --caption-tokens new tokens per caption (min = max new tokens).
Each ratio (wrapper throughput / raw throughput) is taken per repeat and reported as min / median / max.

--tiny swaps in the tiny profile's models (yolo11n-size random YOLO, the tiny SigLIP-style open_clip, the tiny
InternVL captioner) at small sizes, so the command can be smoke-tested on a CPU:
    python benchmarks/bench_gpu_models.py --tiny --device cpu --repeats 3
On a GPU:
    python benchmarks/bench_gpu_models.py --device cuda --batch-size 32 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# InternVL3-8B-hf's configuration (config.json of OpenGVLab/InternVL3-8B-hf), written out so no download is needed.
INTERNVL3_8B_VISION = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                       "num_attention_heads": 16, "image_size": [448, 448], "patch_size": [14, 14],
                       "layer_scale_init_value": 0.1, "norm_type": "layer_norm", "use_mean_pooling": True,
                       "use_qk_norm": False}
INTERNVL3_8B_TEXT = {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                     "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 151674,
                     "max_position_embeddings": 32768, "rope_theta": 1000000.0, "tie_word_embeddings": False}
INTERNVL3_TILE_TOKENS = 256  # (448 / 14 * 0.5) ** 2


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def compare(name: str, unit: str, items: int, wrapper: Callable, raw: Callable, device: str, repeats: int,
            extra: Callable[[object], dict] | None = None) -> dict:
    """Warm both up once, then per repeat time the wrapper and the raw pass back to back (same machine state)."""
    wrapper(), raw()
    wrapper_rates, raw_rates, ratios = [], [], []
    for _ in range(repeats):
        w = items / timed(wrapper, device)
        r = items / timed(raw, device)
        wrapper_rates.append(w)
        raw_rates.append(r)
        ratios.append(w / r)
    result = {"unit": unit, "items_per_repeat": items,
              "wrapper_per_s": {"min": min(wrapper_rates), "median": statistics.median(wrapper_rates),
                                "max": max(wrapper_rates)},
              "raw_per_s": {"min": min(raw_rates), "median": statistics.median(raw_rates), "max": max(raw_rates)},
              "ratio": {"min": min(ratios), "median": statistics.median(ratios), "max": max(ratios), "all": ratios}}
    if extra:
        result.update(extra(wrapper()))
    print(f"{name}: {statistics.median(wrapper_rates):.1f} {unit}/s through the wrapper, "
          f"{statistics.median(raw_rates):.1f} {unit}/s raw; wrapper/raw min {min(ratios):.3f} "
          f"median {statistics.median(ratios):.3f} max {max(ratios):.3f}", flush=True)
    return result


def fixed_images(n: int, size: tuple[int, int], seed: int = 0):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


def bench_detector(args, work: Path) -> dict:
    import torch

    from laion_audit.models.person_detector import PersonDetector
    from laion_audit.models.tiny import build_tiny_yolo

    if args.tiny:
        weights = work / "yolo-tiny.pt"
        build_tiny_yolo(weights, seed=0)
        max_det, imgsz = 4, 320
    else:
        from ultralytics import YOLO

        torch.manual_seed(0)
        weights = work / "yolo11l-random.pt"
        YOLO("yolo11l.yaml").save(str(weights))
        max_det, imgsz = 300, 640
    detector = PersonDetector(weights, name="bench", fingerprint="-", max_det=max_det, imgsz=imgsz,
                              device=args.device)
    # Square images at imgsz: the letterbox is then the identity and predict feeds the model exactly the raw pass's
    # tensor shape (a non-square batch would get a smaller rectangular tensor and flatter the wrapper).
    images = fixed_images(args.batch_size, (imgsz, imgsz))
    detector.detect(images)  # ultralytics builds its predictor (a fused, moved copy of the model) on first predict
    net = detector.model.predictor.model  # the AutoBackend predict runs, not the unfused training graph
    param = next(net.model.parameters())
    tensor = torch.rand(args.batch_size, 3, imgsz, imgsz, device=param.device, dtype=param.dtype)

    def raw():
        with torch.inference_mode():
            net(tensor)

    return compare("detector (YOLO11" + ("-tiny" if args.tiny else "-l") + ")", "images", len(images),
                   lambda: detector.detect(images), raw, args.device, args.repeats,
                   extra=lambda out: {"boxes_per_image": sum(map(len, out)) / len(out)})


def bench_classifier(args, work: Path) -> dict:
    import torch

    from laion_audit.annotation.schemas import RACE_CLASSES
    from laion_audit.models.image_classifier import TrainedClassifier, build_classifier, load_backbone, save_classifier
    from laion_audit.models.tiny import TINY_IMAGE_SIZE, build_tiny_open_clip

    if args.tiny:
        folder = work / "open_clip_tiny"
        build_tiny_open_clip(folder, seed=0)
        reference, size = f"local-dir:{folder}", TINY_IMAGE_SIZE
    else:
        reference, size = "ViT-B-16-SigLIP", 224  # open_clip's model config; pretrained=None: random weights
    torch.manual_seed(0)
    backbone, _ = load_backbone(reference)
    save_classifier(work / "classifier", build_classifier(backbone, len(RACE_CLASSES)), reference, RACE_CLASSES, {})
    classifier = TrainedClassifier(work / "classifier", name="bench", fingerprint="-", random_weights=True,
                                   device=args.device, batch_size=args.batch_size)
    crops = fixed_images(args.batch_size * 2, (90, 180), seed=1)  # person-shaped crops, resized by preprocess
    tensor = torch.rand(args.batch_size, 3, size, size, device=classifier.device)

    def raw():
        with torch.inference_mode():
            for _ in range(2):
                classifier.model(tensor)

    return compare("classifier (" + ("tiny open_clip" if args.tiny else "ViT-B-16-SigLIP") + ")", "crops",
                   len(crops), lambda: classifier.predict_logits(crops), raw, classifier.device, args.repeats)


def build_internvl3_size_captioner(folder: Path, device: str) -> None:
    """An InternVL3-8B-shaped model with random bf16 weights and InternVL3's processor (12-tile 448-px tiling,
    256 tokens per tile) over a small local tokenizer, saved as a `save_pretrained` folder."""
    import torch
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    from laion_audit.models.tiny import INTERNVL_CHAT_TEMPLATE, internvl_tokenizer

    tokenizer = internvl_tokenizer()
    text = {**INTERNVL3_8B_TEXT, "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id}
    config = InternVLConfig(vision_config=INTERNVL3_8B_VISION, text_config=text, downsample_ratio=0.5,
                            tie_word_embeddings=False, image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"))
    size = {"height": 448, "width": 448}
    processor = InternVLProcessor(image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=True,
                                                                        max_patches=12),
                                  video_processor=InternVLVideoProcessor(size=size), tokenizer=tokenizer,
                                  chat_template=INTERNVL_CHAT_TEMPLATE, image_seq_length=INTERNVL3_TILE_TOKENS)
    with torch.device("meta"):
        model = InternVLForConditionalGeneration(config)
    model = model.to_empty(device=device).to(torch.bfloat16)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.02, generator=generator)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def bench_captioner(args, work: Path) -> dict:
    import torch
    from transformers import GenerationConfig

    from laion_audit.annotation.crops import PersonBox
    from laion_audit.annotation.person_annotation import highlight
    from laion_audit.models.prompts import CAPTION_PROMPT
    from laion_audit.models.registry import INTERNVL_TILING, TINY_INTERNVL_TILING
    from laion_audit.models.tiny import build_tiny_internvl
    from laion_audit.models.vision_language import VisionLanguageModel

    folder = work / "captioner"
    if args.tiny:
        build_tiny_internvl(folder, seed=10, emit="words")
        tiling, image_size = dict(TINY_INTERNVL_TILING), (160, 120)
    else:
        build_internvl3_size_captioner(folder, args.device)
        tiling, image_size = dict(INTERNVL_TILING), (640, 480)  # a LAION-typical size: 12 tiles + thumbnail
    captioner = VisionLanguageModel(folder, name="bench", fingerprint="-", device=args.device,
                                    processor_kwargs=tiling)
    n = args.caption_batch_size or args.batch_size
    images = [highlight(im, PersonBox("k", 0, (image_size[0] * 0.3, image_size[1] * 0.2, image_size[0] * 0.6,
                                                image_size[1] * 0.9)))
              for im in fixed_images(n, image_size, seed=2)]
    prompts = [CAPTION_PROMPT] * n
    texts = [captioner.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": p}]}], add_generation_prompt=True)
        for p in prompts]
    inputs = captioner.processor(images=images, text=texts, return_tensors="pt", padding=True,
                                 **tiling).to(captioner.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(captioner.model.dtype)
    # min_new_tokens on both sides: the same number of tokens per caption whatever a random model emits.
    config = GenerationConfig(**captioner.generation, max_new_tokens=args.caption_tokens,
                              min_new_tokens=args.caption_tokens)

    def raw():
        with torch.inference_mode():
            captioner.model.generate(**inputs, generation_config=config)

    # The wrapper's own generate, with the same fixed length as the raw pass (a benchmark-only setting).
    captioner.generation = {**captioner.generation, "min_new_tokens": args.caption_tokens}

    def wrapper():
        return captioner.generate(images, prompts, args.caption_tokens)

    return compare("captioner (" + ("tiny InternVL" if args.tiny else "InternVL3-8B-size, random") + ")",
                   "captions", n, wrapper, raw, captioner.device, args.repeats,
                   extra=lambda out: {"prompt_tokens": int(inputs["input_ids"].shape[1]),
                                      "new_tokens": args.caption_tokens})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cuda, cuda:1 or cpu; default: cuda when available")
    parser.add_argument("--batch-size", type=int, default=32, help="images (detector) and crops (classifier) per call")
    parser.add_argument("--caption-batch-size", type=int, default=None, help="default: --batch-size")
    parser.add_argument("--caption-tokens", type=int, default=64, help="new tokens per caption")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="the tiny profile's models at small sizes (CPU smoke run)")
    parser.add_argument("--only", nargs="+", choices=("detector", "classifier", "captioner"),
                        default=("detector", "classifier", "captioner"))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_gpu_models.json"))
    args = parser.parse_args(argv)

    from laion_audit.ops.offline import apply_offline_environment

    apply_offline_environment()
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.repeats < 3:
        parser.error("--repeats must be >= 3 (min/median/max)")
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    print(f"device {args.device} ({device_name}), batch {args.batch_size}, repeats {args.repeats}"
          + (", tiny models" if args.tiny else ""), flush=True)
    benches = {"detector": bench_detector, "classifier": bench_classifier, "captioner": bench_captioner}
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_gpu_models_") as tmp:
        for name in args.only:
            work = Path(tmp) / name
            work.mkdir()
            results[name] = benches[name](args, work)
    report = {"device": args.device, "device_name": device_name, "tiny": args.tiny, "batch_size": args.batch_size,
              "repeats": args.repeats, "torch": torch.__version__, "results": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
