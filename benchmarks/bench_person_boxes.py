"""`person_boxes` end to end through the DataLoader input pipeline against raw `model.predict` on the same images.

Two measures over the same generated shard, interleaved per repeat so machine noise hits both alike:
  end_to_end   detect_shard(): tar read, JPEG decode and letterbox in --workers DataLoader processes (prefetching
               while the model runs), batched YOLO, rows (the asset's work minus the parquet write);
  raw_predict  ultralytics `model.predict()` on the same images already decoded in memory (PIL), same batch size;
  in_process   end_to_end with no worker process (decoding in the model's process, no overlap): what the
               workers buy.
The ratio end_to_end / raw_predict is taken per repeat (same repeat, same machine state) and reported as
min / median / max; the target is >= 0.8. The end-to-end run also reports where its time went (waiting for input
vs in the model), as the asset's run metadata does.

CPU, the tiny profile's random YOLO11 (what `laion-audit models init-tiny DIR` builds), max_det as in that profile:
    python benchmarks/bench_person_boxes.py --samples 200 --repeats 3
GPU, a random-weight YOLO11-l built from its yaml (no download), 8 decoding workers:
    python benchmarks/bench_person_boxes.py --samples 4000 --batch-size 64 --repeats 3 \\
        --yolo-yaml yolo11l.yaml --device 0 --workers 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from laion_audit.annotation.throughput import default_workers

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=default_workers(), help="DataLoader decoding processes")
    parser.add_argument("--yolo-yaml", default=None, help="build a random model of this architecture instead")
    parser.add_argument("--max-det", type=int, default=None,
                        help="default: the tiny profile's, or 300 with --yolo-yaml")
    parser.add_argument("--device", default=None, help="e.g. 0 for the first GPU; default: ultralytics' choice")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_person_boxes.json"))
    args = parser.parse_args(argv)

    from laion_audit.ops.offline import apply_offline_environment

    apply_offline_environment()
    import pyarrow as pa

    from laion_audit.annotation.detection import detect_shard
    from laion_audit.annotation.throughput import LoaderStats
    from laion_audit.models.person_detector import PersonDetector
    from laion_audit.models.registry import profile_default
    from laion_audit.models.tiny import build_tiny_yolo
    from laion_audit.sample_data import write_webdataset_shard
    from laion_audit.shards.images import iter_images
    from laion_audit.shards.reader import read_samples
    from laion_audit.shards.sources import ShardSource

    work = Path(tempfile.mkdtemp(prefix="bench_person_boxes_"))
    tar = work / "00000.tar"
    write_webdataset_shard(tar, 0, args.samples, seed=0)
    source = ShardSource("00000", "webdataset", str(tar))
    samples = pa.concat_tables(list(read_samples(source)))
    weights = work / "yolo.pt"
    if args.yolo_yaml:
        from ultralytics import YOLO

        YOLO(args.yolo_yaml).save(str(weights))
        max_det = args.max_det or 300
    else:
        build_tiny_yolo(weights, seed=0)
        max_det = profile_default("tiny", "max_det", args.max_det)
    detector = PersonDetector(weights, name=weights.name, fingerprint="bench", max_det=max_det, device=args.device)
    keys = [k for k, ok in zip(samples.column("key").to_pylist(), samples.column("has_image").to_pylist()) if ok]
    images = [image for _, image in iter_images(source, keys)]
    detector.detect(images[: args.batch_size])  # warm-up (model fuse, CUDA context, cuDNN autotune)

    def raw_predict() -> None:
        for start in range(0, len(images), args.batch_size):
            detector.detect(images[start : start + args.batch_size])

    runs: dict[str, list[float]] = {"end_to_end": [], "raw_predict": [], "in_process": []}
    pipeline: list[dict] = []
    for _ in range(args.repeats):
        stats = LoaderStats()
        t = time.perf_counter()
        detect_shard(source, samples, detector, batch_size=args.batch_size, workers=args.workers, stats=stats)
        runs["end_to_end"].append(len(images) / (time.perf_counter() - t))
        pipeline.append(stats.as_metadata())
        t = time.perf_counter()
        raw_predict()
        runs["raw_predict"].append(len(images) / (time.perf_counter() - t))
        t = time.perf_counter()
        detect_shard(source, samples, detector, batch_size=args.batch_size, workers=0)
        runs["in_process"].append(len(images) / (time.perf_counter() - t))

    def per_repeat(name: str) -> dict:
        ratios = [e / r for e, r in zip(runs[name], runs["raw_predict"], strict=True)]
        return {"min": min(ratios), "median": statistics.median(ratios), "max": max(ratios), "all": ratios}

    median = {k: statistics.median(v) for k, v in runs.items()}
    report = {
        "samples": args.samples, "images": len(images), "model": args.yolo_yaml or "tiny yolo11 (random)",
        "device": args.device or "default", "workers": args.workers, "batch_size": args.batch_size,
        "max_det": max_det, "repeats": args.repeats, "median_images_per_s": median,
        "end_to_end_over_raw_predict": per_repeat("end_to_end"),
        "in_process_over_raw_predict": per_repeat("in_process"),
        "pipeline": pipeline, "all_runs": runs, "command": " ".join(sys.argv),
    }
    print(f"{len(images)} images, model {report['model']}, device {report['device']}, workers {args.workers}, "
          f"batch {args.batch_size}, max_det {max_det}, {args.repeats} repeats")
    for name, value in median.items():
        print(f"  {name:<12}{value:>10.1f} images/s (median)")
    for name in ("end_to_end", "in_process"):
        r = report[f"{name}_over_raw_predict"]
        print(f"  {name} / raw_predict: min {r['min']:.3f}  median {r['median']:.3f}  max {r['max']:.3f}")
    for i, p in enumerate(pipeline):
        print(f"  end_to_end run {i}: input wait {p['input_wait_s']:.2f} s, model {p['model_s']:.2f} s, "
              f"wall {p['wall_s']:.2f} s over {p['batches']} batches")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
