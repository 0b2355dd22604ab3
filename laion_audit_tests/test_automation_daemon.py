"""A new shard dropped into the watched folder flows through every per-shard asset by itself: `dagster dev` runs
the real daemon (sensors, run queue, run launcher) and nobody launches a run."""

import os
import shutil
import time
from pathlib import Path

import pytest

from laion_audit.shards.lineage import PER_SHARD_ASSETS
from laion_audit.shards.store import ShardStore

from .test_dagster_dev import _free_port, start_dagster_dev, stop_dagster_dev

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
DEADLINE_SECONDS = 600  # seven chain stages, each a run the daemon queues and launches


def _copy_shard(sample_shards: Path, key: str, shards: Path) -> None:
    # The tar last: the sensor must not see img2dataset's _stats.json before the tar is there.
    for path in sorted(sample_shards.glob(f"{key}*"), key=lambda p: p.suffix == ".tar"):
        shutil.copy(path, shards / path.name)


@pytest.mark.slow
@pytest.mark.timeout(1000)
def test_a_new_shard_is_materialized_through_the_chain_by_the_daemon(tmp_path, sample_shards, tiny_models):
    from laion_audit.definitions import build_definitions
    from laion_audit.ops.settings import Settings

    shards, store_root, home = tmp_path / "shards", tmp_path / "store", tmp_path / "dagster_home"
    shards.mkdir()
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ, "DAGSTER_HOME": str(home), "LAION_AUDIT_HOME": str(tmp_path),
        "LAION_AUDIT_SHARDS": str(shards), "LAION_AUDIT_STORE": str(store_root),
        "LAION_AUDIT_MODELS_DIR": str(tiny_models), "LAION_AUDIT_TRAINED_DIR": str(tmp_path / "trained"),
        "LAION_AUDIT_MODEL_PROFILE": "tiny", "LAION_AUDIT_EXECUTOR": "in_process",
        "LAION_AUDIT_SETTLE_SECONDS": "0", "LAION_AUDIT_SENSOR_INTERVAL": "5", "LAION_AUDIT_CHECK_AUTOMATION": "0",
    }
    settings = Settings.from_env(env)

    # The classifiers exist already (trained on a first shard); that is the state a new shard arrives in.
    _copy_shard(sample_shards, "00000", shards)
    defs = build_definitions(settings)
    with _instance_at(home) as instance:
        instance.add_dynamic_partitions("laion_shards", ["00000"])
        for job in ("shard_ingest_job", "person_detection_job"):
            assert defs.resolve_job_def(job).execute_in_process(partition_key="00000", instance=instance,
                                                                run_config=QUIET).success
        assert defs.resolve_job_def("classifier_training_job").execute_in_process(instance=instance,
                                                                                 run_config=QUIET).success
        assert defs.resolve_job_def("person_labels_job").execute_in_process(partition_key="00000",
                                                                           instance=instance, run_config=QUIET).success

    port = _free_port()
    log = (tmp_path / "dagster_dev.log").open("w")
    process = start_dagster_dev(port, env, log)
    store = ShardStore(str(store_root))
    try:
        _copy_shard(sample_shards, "00001", shards)
        deadline = time.monotonic() + DEADLINE_SECONDS
        missing = list(PER_SHARD_ASSETS)
        while time.monotonic() < deadline and missing:
            missing = [a for a in PER_SHARD_ASSETS
                       if store.read_marker(a, "00001", PER_SHARD_ASSETS[a].restricted) is None]
            time.sleep(2)
        assert not missing, (f"not materialized within {DEADLINE_SECONDS}s: {missing}\n"
                             + (tmp_path / "dagster_dev.log").read_text()[-3000:])
    finally:
        stop_dagster_dev(process)
        log.close()

    with _instance_at(home) as instance:
        runs = instance.get_runs()
        launched_by = {run.tags.get("dagster/sensor_name") for run in runs if "dagster/sensor_name" in run.tags}
        assert launched_by == {"shard_discovery_sensor", "shard_chain_sensor"}
        # Multi-asset stages ran as one run each for the new shard, every one a success.
        for run in runs:
            if "dagster/sensor_name" in run.tags:
                assert run.status.value == "SUCCESS", (run.job_name, run.status)


def _instance_at(home: Path):
    from dagster import DagsterInstance

    return DagsterInstance.from_config(str(home))
