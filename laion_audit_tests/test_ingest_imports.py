"""Ingest runs in process, several shards per run, and the sensors run in the daemon: none of that may pay
for importing torch (1.6 s of a 2 s shard) or the model libraries. Checked in a fresh interpreter, since this
test process has long imported them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "ultralytics", "open_clip", "transformers", "webdataset")


@pytest.mark.parametrize(
    "module",
    [
        "laion_audit.shards.ingest",  # the `samples` asset's logic
        "laion_audit.defs.shards",  # the `samples` asset and the discovery sensor
        "laion_audit.definitions",  # what `dagster asset materialize` and the daemon load
    ],
)
def test_importing_the_ingest_path_imports_no_model_library(module):
    code = (
        f"import importlib, json, sys; importlib.import_module({module!r}); "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_building_the_definitions_imports_no_model_library(tmp_path):
    code = (
        "import json, sys\n"
        "from laion_audit.definitions import build_definitions\n"
        "from laion_audit.ops.settings import Settings\n"
        f"defs = build_definitions(Settings(home={str(tmp_path)!r}, shards_root={str(tmp_path / 's')!r}, "
        f"store_root={str(tmp_path / 'store')!r}))\n"
        "defs.resolve_job_def('shard_ingest_job')\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
