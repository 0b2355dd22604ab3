"""Throughput of the `samples` asset against a plain tar read + JPEG header parse of the same shard.

Both sides run in the same process on the same generated shard, one after the other in each repeat, so the
machine's noise hits both; each repeat gives a ratio (asset throughput / baseline throughput of that repeat)
and the ratios are reported as min/median/max. The asset side is the real thing and only it: the `samples`
asset of `shard_ingest_job` materializing one partition on a temporary SQLite instance (reader, image check,
sha256, parquet write, marker), with `force` so each repeat does the work, once with the decode check and once
with the header check.

The whole-process measure runs `dagster asset materialize` of the same partition in a fresh interpreter (the
way a run worker starts: imports, definitions, instance, the asset) and compares its wall time with the
in-process materialization (decode check) of the same repeat.

Usage: python benchmarks/bench_samples.py --samples 10000 [--repeats 3] [--no-subprocess]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
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


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _materialize_in_subprocess(work: Path, dagster_home: Path, config_path: Path) -> float:
    env = dict(
        os.environ,
        DAGSTER_HOME=str(dagster_home),
        LAION_AUDIT_HOME=str(work),
        LAION_AUDIT_SHARDS=str(work / "shards"),
        LAION_AUDIT_STORE=str(work / "store"),
        LAION_AUDIT_EXECUTOR="in_process",
        LAION_AUDIT_CHECK_AUTOMATION="0",
    )
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster) if dagster.exists() else "dagster", "asset", "materialize", "-m",
               "laion_audit.definitions", "--select", "samples", "--partition", "00000", "-c", str(config_path)]
    t = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=str(work), capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"dagster asset materialize failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-subprocess", action="store_true", help="skip the whole-process measure")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_samples.json"))
    args = parser.parse_args(argv)

    from laion_audit.ops.offline import apply_offline_environment

    apply_offline_environment()
    from dagster import AssetKey, DagsterInstance

    from laion_audit.definitions import build_definitions
    from laion_audit.defs.partitions import shard_partitions
    from laion_audit.ops.settings import Settings
    from laion_audit.sample_data import write_webdataset_shard

    work = Path(tempfile.mkdtemp(prefix="bench_samples_"))
    shards = work / "shards"
    shards.mkdir()
    t0 = time.perf_counter()
    write_webdataset_shard(shards / "00000.tar", 0, args.samples, seed=0)
    print(f"generated {args.samples} samples in {time.perf_counter() - t0:.1f}s "
          f"({(shards / '00000.tar').stat().st_size / 1e6:.1f} MB); {os.cpu_count()} CPUs")

    settings = Settings(home=str(work), shards_root=str(shards), store_root=str(work / "store"),
                        executor="in_process", register_batch=1000, max_partitions_per_run=1,
                        check_automation=False)
    job = build_definitions(settings).resolve_job_def("shard_ingest_job")
    dagster_home = work / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    config_path = work / "materialize.yaml"
    config_path.write_text(json.dumps({"ops": {"samples": {"config": {"force": True, "verify_images": "decode"}}},
                                       "loggers": {"console": {"config": {"log_level": "WARNING"}}}}))

    seconds: dict[str, list[float]] = {"baseline_tar_header": [], "samples_asset_decode": [],
                                       "samples_asset_header": [], "dagster_asset_materialize": []}
    ratios: dict[str, list[float]] = {"decode_vs_baseline": [], "header_vs_baseline": [],
                                      "process_vs_in_process": []}
    with DagsterInstance.local_temp(str(dagster_home)) as instance:
        instance.add_dynamic_partitions(shard_partitions.name, ["00000"])
        for repeat in range(args.repeats):
            t = time.perf_counter()
            n = baseline_tar_and_header(shards / "00000.tar")
            base = time.perf_counter() - t
            assert n == args.samples, n
            seconds["baseline_tar_header"].append(base)
            for mode in ("decode", "header"):
                config = {"ops": {"samples": {"config": {"force": True, "verify_images": mode}}},
                          "loggers": {"console": {"config": {"log_level": "WARNING"}}}}
                t = time.perf_counter()
                result = job.execute_in_process(partition_key="00000", instance=instance, run_config=config,
                                                asset_selection=[AssetKey("samples")])
                elapsed = time.perf_counter() - t
                assert result.success
                rows = result.asset_materializations_for_node("samples")[0].metadata["rows"].value
                assert rows == args.samples, rows
                seconds[f"samples_asset_{mode}"].append(elapsed)
                ratios[f"{mode}_vs_baseline"].append(base / elapsed)  # throughput ratio: > 1 is faster
            if not args.no_subprocess:
                whole = _materialize_in_subprocess(work, dagster_home, config_path)
                seconds["dagster_asset_materialize"].append(whole)
                ratios["process_vs_in_process"].append(whole / seconds["samples_asset_decode"][-1])
            print(f"repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in ratios.items() if v))

    print(f"\n{'pair (per repeat)':<44}{'min':>8}{'median':>8}{'max':>8}")
    for name, values in ratios.items():
        if values:
            s = _spread(values)
            print(f"{name:<44}{s['min']:>8.3f}{s['median']:>8.3f}{s['max']:>8.3f}")
    print("(throughput ratios for *_vs_baseline, target >= 0.9 decode, >= 1.5 header; "
          "process_vs_in_process is a time ratio, target <= 2)")
    print(f"\n{'measure':<44}{'min s':>8}{'median':>8}{'max':>8}")
    for name, values in seconds.items():
        if values:
            s = _spread(values)
            print(f"{name:<44}{s['min']:>8.2f}{s['median']:>8.2f}{s['max']:>8.2f}")
    report = {"samples": args.samples, "repeats": args.repeats, "cpus": os.cpu_count(),
              "ratios": {k: _spread(v) for k, v in ratios.items() if v}, "ratios_all": ratios,
              "seconds": {k: _spread(v) for k, v in seconds.items() if v}, "seconds_all": seconds}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
