"""The main job as a new user runs it: `laion-audit demo` end to end in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from laion_audit.shards.store import ShardStore


@pytest.mark.slow
def test_demo_materializes_every_sample_shard_and_summarizes(tmp_path):
    workdir = tmp_path / "demo"
    cli = Path(sys.executable).with_name("laion-audit")
    result = subprocess.run([str(cli), "demo", "--workdir", str(workdir)], capture_output=True, text=True,
                            timeout=900, env={**os.environ})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output

    manifest = json.loads((workdir / "shards" / "manifest.json").read_text())
    store = ShardStore(str(workdir / "store"))
    summary = output[output.index("Summary"):]
    for shard in manifest["shards"]:
        marker = store.read_marker("samples", shard)
        assert marker is not None, shard
        line = next(line for line in summary.splitlines() if line.strip().startswith(shard))
        assert f"{marker['rows']}" in line and f"{marker['errors']}" in line

    bad_shard = next(iter(manifest["bad_samples"].values()))[:5]
    bad_line = next(line for line in summary.splitlines() if line.strip().startswith(bad_shard))
    for cause in ("corrupt_image", "truncated_image", "decompression_bomb", "missing_caption",
                  "non_utf8_caption", "missing_json", "malformed_json", "missing_image", "truncated_tar"):
        assert cause in bad_line, (cause, bad_line)
    assert "tar ends" in summary

    # The runs are in the demo's SQLite DAGSTER_HOME, where `dagster dev` will find them.
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(workdir / "dagster_home")) as instance:
        assert instance.get_materialized_partitions(AssetKey("samples")) == set(manifest["shards"])
    from laion_audit.shards.store import ShardStore

    table = ShardStore(str(workdir / "store")).read_table("samples", bad_shard)
    assert table.num_rows == len(set(table.column("key").to_pylist()))
