"""Throughput of the `samples` asset against a plain tar read + JPEG header parse of the same shard.

Both sides run in the same process on the same generated shard, alternating, so the machine's noise hits both;
the result is reported as a ratio. The asset side is the real thing: the Dagster job materializing one partition
on a temporary SQLite instance (reader, image verification, sha256, parquet write, marker), with `force` so
each repeat does the work. Usage: python benchmarks/bench_samples.py --samples 10000 [--repeats 3]
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

from PIL import Image


def baseline_tar_and_header(path: Path) -> int:
    """The least a reader must do: stream the tar and parse each JPEG header (size, format)."""
    n = 0
    with tarfile.open(path, "r|*") as archive:
        for member in archive:
            if not member.isfile():
                continue
            data = archive.extractfile(member).read()
            if member.name.endswith(".jpg"):
                with Image.open(io.BytesIO(data)) as image:
                    _ = image.size
                n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_samples.json"))
    args = parser.parse_args(argv)

    from laion_audit.ops.offline import apply_offline_environment

    apply_offline_environment()
    from dagster import DagsterInstance

    from laion_audit.definitions import build_definitions
    from laion_audit.defs.partitions import shard_partitions
    from laion_audit.sample_data import write_webdataset_shard
    from laion_audit.ops.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="bench_samples_"))
    shards = work / "shards"
    shards.mkdir()
    t0 = time.perf_counter()
    write_webdataset_shard(shards / "00000.tar", 0, args.samples, seed=0)
    print(f"generated {args.samples} samples in {time.perf_counter() - t0:.1f}s "
          f"({(shards / '00000.tar').stat().st_size / 1e6:.1f} MB)")

    settings = Settings(home=str(work), shards_root=str(shards), store_root=str(work / "store"),
                        executor="in_process", register_batch=1000, max_partitions_per_run=1)
    job = build_definitions(settings).resolve_job_def("shard_ingest_job")
    results: dict[str, list[float]] = {"baseline_tar_header": [], "samples_asset_decode": [],
                                       "samples_asset_header": []}
    dagster_home = work / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with DagsterInstance.local_temp(str(dagster_home)) as instance:
        instance.add_dynamic_partitions(shard_partitions.name, ["00000"])
        for _ in range(args.repeats):
            t = time.perf_counter()
            n = baseline_tar_and_header(shards / "00000.tar")
            results["baseline_tar_header"].append(n / (time.perf_counter() - t))
            for mode in ("decode", "header"):
                config = {"ops": {"samples": {"config": {"force": True, "verify_images": mode}}}}
                t = time.perf_counter()
                config["loggers"] = {"console": {"config": {"log_level": "WARNING"}}}
                result = job.execute_in_process(partition_key="00000", instance=instance, run_config=config)
                elapsed = time.perf_counter() - t
                assert result.success
                rows = result.asset_materializations_for_node("samples")[0].metadata["rows"].value
                assert rows == args.samples, rows
                results[f"samples_asset_{mode}"].append(rows / elapsed)

    median = {name: statistics.median(values) for name, values in results.items()}
    base = median["baseline_tar_header"]
    print(f"\n{'measure':<34}{'samples/s':>12}{'ratio to baseline':>20}")
    for name, value in median.items():
        print(f"{name:<34}{value:>12.0f}{value / base:>20.3f}")
    report = {"samples": args.samples, "repeats": args.repeats, "median_samples_per_s": median,
              "ratio_to_baseline": {k: v / base for k, v in median.items()}, "all_runs": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
