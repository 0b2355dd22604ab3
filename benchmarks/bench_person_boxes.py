"""`person_boxes` throughput end to end against raw `model.predict`, and shard decoding against plain PIL.

Three measures over the same generated shard, interleaved per repeat so machine noise hits all of them:
  end_to_end  detect_shard(): tar read, JPEG decode, batched YOLO predict, rows (the asset's work minus the
              parquet write);
  raw_predict model.predict() on the same images already decoded in memory, same batch size;
  decode      the shard image stream (webdataset iteration + PIL RGB decode) against a plain tarfile + PIL loop.
Reported as ratios. By default the tiny profile's YOLO11 on CPU; `--yolo-yaml yolo11l.yaml --device 0` measures
a random-weight YOLO11-l on a GPU. Usage: python benchmarks/bench_person_boxes.py --samples 200
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path


def plain_pil_decode(path: Path) -> int:
    from PIL import Image

    n = 0
    with tarfile.open(path, "r|*") as archive:
        for member in archive:
            if member.name.endswith(".jpg"):
                with Image.open(io.BytesIO(archive.extractfile(member).read())) as image:
                    image.convert("RGB")
                n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--yolo-yaml", default=None, help="build a random model of this architecture instead")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_person_boxes.json"))
    args = parser.parse_args(argv)

    from laion_audit.ops.offline import apply_offline_environment

    apply_offline_environment()
    import pyarrow as pa

    from laion_audit.models.person_detector import PersonDetector
    from laion_audit.models.tiny import build_tiny_yolo
    from laion_audit.annotation.detection import detect_shard
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
    else:
        build_tiny_yolo(weights, seed=0)
    detector = PersonDetector(weights, name=weights.name, fingerprint="bench", device=args.device)
    keys = [k for k, ok in zip(samples.column("key").to_pylist(), samples.column("has_image").to_pylist()) if ok]
    images = [image for _, image in iter_images(source, keys)]
    detector.detect(images[: args.batch_size])  # warm-up (model fuse, CUDA context)

    runs: dict[str, list[float]] = {"end_to_end": [], "raw_predict": [], "decode_stream": [], "decode_plain_pil": []}
    for _ in range(args.repeats):
        t = time.perf_counter()
        detect_shard(source, samples, detector, batch_size=args.batch_size)
        runs["end_to_end"].append(len(images) / (time.perf_counter() - t))
        t = time.perf_counter()
        for start in range(0, len(images), args.batch_size):
            detector.detect(images[start : start + args.batch_size])
        runs["raw_predict"].append(len(images) / (time.perf_counter() - t))
        t = time.perf_counter()
        n = sum(1 for _ in iter_images(source, keys))
        runs["decode_stream"].append(n / (time.perf_counter() - t))
        t = time.perf_counter()
        n = plain_pil_decode(tar)
        runs["decode_plain_pil"].append(n / (time.perf_counter() - t))

    median = {k: statistics.median(v) for k, v in runs.items()}
    report = {
        "samples": args.samples, "images": len(images), "model": args.yolo_yaml or "tiny yolo11n (random)",
        "device": args.device or "cpu", "median_images_per_s": median,
        "end_to_end_over_raw_predict": median["end_to_end"] / median["raw_predict"],
        "decode_stream_over_plain_pil": median["decode_stream"] / median["decode_plain_pil"], "all_runs": runs,
    }
    print(f"{len(images)} images, model {report['model']}, device {report['device']}")
    for name, value in median.items():
        print(f"  {name:<18}{value:>10.1f} images/s")
    print(f"  end_to_end / raw_predict     = {report['end_to_end_over_raw_predict']:.3f}")
    print(f"  decode_stream / plain_pil    = {report['decode_stream_over_plain_pil']:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
