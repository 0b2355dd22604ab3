"""The facial impression audit end to end on an OMI-layout folder of 1,004 generated images, tiny profile.

In one run, on the same images:

* ``floor`` — the tiny CLIPs' image towers alone on images decoded and preprocessed beforehand (the model's share,
  no file reading, no text, no statistics);
* ``associations`` — `facial_impression_associations` through Dagster, one run per CLIP model (decode, embed
  raw, prompts, m per image and attribute, parquet and record written);
* ``bias`` — `facial_impression_bias` through Dagster (Spearman per model and attribute, IRR correlation, OLS,
  correlation matrices, Ward, report and PNG figures).

Reported: images/s end to end (1,004 images / (associations + bias) seconds; each image is scored by every CLIP
model of the profile), model-images/s of the associations step and of the floor, and the ratio
associations / floor. Generating the folder and building the tiny CLIPs are timed apart and not counted.
Usage: python benchmarks/bench_facial_impressions.py [--images 1004] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def _build_tiny_clips(models_dir: Path) -> None:
    from laion_audit.models.registry import TINY, TINY_CLIP_WIDTHS
    from laion_audit.models.tiny import build_tiny_clip

    entries = {entry.role: entry for entry in TINY}
    for i, (size, width) in enumerate(TINY_CLIP_WIDTHS.items()):
        build_tiny_clip(models_dir / entries[f"clip_tiny_{size}"].path, 30 + i, width)


def _floor(models_dir: Path, omi: Path) -> tuple[float, int]:
    """Seconds for the image towers alone on pre-decoded, pre-preprocessed batches of every image."""
    import torch
    from PIL import Image

    from laion_audit.models.clip_embedder import ClipEmbedder
    from laion_audit.models.registry import ModelRegistry, clip_roles

    registry = ModelRegistry("tiny", models_dir)
    images = [Image.open(p).convert("RGB") for p in sorted((omi / "images").iterdir())]
    seconds = 0.0
    for role in clip_roles("tiny"):
        model = registry.resolve(role)
        clip = ClipEmbedder(model.path, model.entry.source, name=role, fingerprint=model.fingerprint,
                            random_weights=True, device="cpu")
        tensors = [torch.stack([clip.preprocess(im) for im in images[i:i + 64]]) for i in range(0, len(images), 64)]
        started = time.perf_counter()
        with torch.inference_mode():
            for batch in tensors:
                clip.model.encode_image(batch)
        seconds += time.perf_counter() - started
    return seconds, len(images) * len(clip_roles("tiny"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1004)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_impressions_"))
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    from dagster import instance_for_test

    from laion_audit.definitions import build_definitions
    from laion_audit.models.registry import clip_roles
    from laion_audit.ops.settings import Settings
    from laion_audit.sample_data.impressions import write_impressions_dataset

    t0 = time.perf_counter()
    write_impressions_dataset(workdir / "omi", args.images)
    generate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _build_tiny_clips(workdir / "models")
    build_s = time.perf_counter() - t0
    settings = Settings(home=str(workdir), shards_root=str(workdir / "shards"), store_root=str(workdir / "store"),
                        executor="in_process", models_dir=str(workdir / "models"), omi_dir=str(workdir / "omi"))
    defs = build_definitions(settings)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    roles = clip_roles("tiny")
    with instance_for_test(overrides={"telemetry": {"enabled": False}}) as instance:
        t0 = time.perf_counter()
        for role in roles:
            assert defs.resolve_job_def("facial_impression_associations_job").execute_in_process(
                partition_key=role, instance=instance, run_config=quiet).success
        associations_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert defs.resolve_job_def("facial_impression_bias_job").execute_in_process(
            instance=instance, run_config=quiet).success
        bias_s = time.perf_counter() - t0
    floor_s, model_images = _floor(workdir / "models", workdir / "omi")
    report = json.loads((workdir / "store" / "reports" / "facial_impression_bias.json").read_text())
    result = {
        "images": args.images, "models": roles, "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "generate_s": round(generate_s, 2), "build_tiny_clips_s": round(build_s, 2),
        "associations_s": round(associations_s, 2), "bias_s": round(bias_s, 2),
        "end_to_end_images_per_s": round(args.images / (associations_s + bias_s), 1),
        "associations_model_images_per_s": round(model_images / associations_s, 1),
        "floor_s": round(floor_s, 2), "floor_model_images_per_s": round(model_images / floor_s, 1),
        "associations_over_floor_time": round(associations_s / floor_s, 2),
        "stimuli_analysed": report["dataset"]["stimuli_analysed"],
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
