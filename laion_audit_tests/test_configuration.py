"""Configuration is checked when definitions load and when a run starts; errors name the setting and are not
retried."""

import pytest
from dagster import AssetKey, DagsterEventType

from laion_audit.ops.settings import Settings

from .dagster_harness import dagster_test_instance, definitions, register
from .shard_fixtures import good_sample, write_tar


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("LAION_AUDIT_MODEL_PROFILE", "huge", "LAION_AUDIT_MODEL_PROFILE must be one of ['paper', 'tiny'], got 'huge'"),
    ("LAION_AUDIT_EXECUTOR", "celery", "LAION_AUDIT_EXECUTOR must be one of"),
    ("LAION_AUDIT_REGISTER_BATCH", "lots", "LAION_AUDIT_REGISTER_BATCH must be an integer, got 'lots'"),
    ("LAION_AUDIT_REGISTER_BATCH", "0", "LAION_AUDIT_REGISTER_BATCH must be at least 1, got 0"),
    ("LAION_AUDIT_MAX_PARTITIONS_PER_RUN", "0", "LAION_AUDIT_MAX_PARTITIONS_PER_RUN must be at least 1, got 0"),
    ("LAION_AUDIT_SETTLE_SECONDS", "-1", "LAION_AUDIT_SETTLE_SECONDS must be at least 0, got -1.0"),
    ("LAION_AUDIT_GPU_NODE_SELECTOR", "{gpu: yes", "LAION_AUDIT_GPU_NODE_SELECTOR must be JSON"),
])
def test_a_bad_setting_is_an_error_naming_the_variable(tmp_path, variable, value, message):
    with pytest.raises(ValueError) as raised:
        Settings.from_env({"LAION_AUDIT_HOME": str(tmp_path), variable: value})
    assert str(raised.value).startswith(message)


def test_the_cli_reports_a_bad_setting_instead_of_a_traceback(tmp_path, monkeypatch, capsys):
    from laion_audit.ops.cli import main

    monkeypatch.setenv("LAION_AUDIT_EXECUTOR", "celery")
    assert main(["provenance", "0", "000000000", "--store", str(tmp_path)]) == 1  # --store needs no settings
    assert "no sample 000000000" in capsys.readouterr().out
    assert main(["provenance", "0", "000000000"]) == 2
    assert capsys.readouterr().err.startswith("laion-audit: LAION_AUDIT_EXECUTOR must be one of")


@pytest.mark.parametrize(("ops", "message"), [
    ({"person_boxes": {"config": {"min_side": 0}}}, "person_boxes: min_side must be > 0 (got 0.0)"),
    ({"person_boxes": {"config": {"conf": 1.5}}}, "person_boxes: conf must be > 0 and <= 1 (got 1.5)"),
])
def test_an_out_of_range_run_config_fails_once_naming_the_setting(tmp_path, ops, message):
    shards = tmp_path / "shards"
    shards.mkdir()
    write_tar(shards / "00000.tar", [good_sample("000000000")])
    defs = definitions(shards, tmp_path / "store")
    with dagster_test_instance() as instance:
        register(instance, ["00000"])
        assert defs.resolve_job_def("shard_ingest_job").execute_in_process(partition_key="00000",
                                                                           instance=instance).success
        result = defs.resolve_job_def("person_detection_job").execute_in_process(
            partition_key="00000", instance=instance, raise_on_error=False, run_config={"ops": ops},
            asset_selection=[AssetKey("person_boxes")])
    assert not result.success
    types = [e.event_type for e in result.all_events]
    assert types.count(DagsterEventType.STEP_START) == 1 and DagsterEventType.STEP_UP_FOR_RETRY not in types
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert f"invalid run config for {message}" in failure.step_failure_data.user_failure_data.description


def test_an_unknown_consensus_rule_is_refused_when_the_run_is_launched(tmp_path):
    from dagster import DagsterInvalidConfigError

    defs = definitions(tmp_path, tmp_path / "store")
    with dagster_test_instance() as instance:
        register(instance, ["00000"])
        with pytest.raises(DagsterInvalidConfigError, match="consensus_rule"):
            defs.resolve_job_def("person_detection_job").execute_in_process(
                partition_key="00000", instance=instance,
                run_config={"ops": {"gender_votes": {"config": {"consensus_rule": "loudest"}}}})
