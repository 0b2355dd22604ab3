"""Profile-dependent defaults come from the Settings object's model profile, never from the environment.

The expected values are the paper's (spec §2-4: ultralytics' max_det 300, classifiers 10 epochs at lr 1e-5,
captions of up to 256 new tokens) and the tiny profile's, written out here rather than read from the registry.
"""

import shutil

import pytest
from dagster import AssetKey

from laion_audit.definitions import build_definitions
from laion_audit.models.registry import ModelRegistry, profile_default
from laion_audit.ops.settings import Settings
from laion_audit.shards.store import ShardStore

from .dagster_harness import dagster_test_instance, register
from .shard_fixtures import good_sample, write_tar

EXPECTED = {
    "paper": {"max_det": 300, "classifier_epochs": 10, "classifier_lr": 1e-5, "caption_max_new_tokens": 256,
              "votes_sample_rate": 0.01},
    "tiny": {"max_det": 4, "classifier_epochs": 3, "classifier_lr": 1e-3, "caption_max_new_tokens": 24,
             "votes_sample_rate": 1.0},
}
OTHER = {"paper": "tiny", "tiny": "paper"}
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _settings(root, profile) -> Settings:
    return Settings(home=str(root), shards_root=str(root / "shards"), store_root=str(root / "store"),
                    executor="in_process", model_profile=profile, models_dir=str(root / "models"),
                    trained_dir=str(root / "trained"))


@pytest.mark.parametrize("profile", ["paper", "tiny"])
def test_the_settings_profile_sets_the_defaults_whatever_the_environment_says(
        profile, tmp_path, tiny_models, monkeypatch):
    # The environment names the other profile: it must not matter once a Settings object is given.
    monkeypatch.setenv("LAION_AUDIT_MODEL_PROFILE", OTHER[profile])
    (tmp_path / "shards").mkdir()
    write_tar(tmp_path / "shards" / "00000.tar", [good_sample("000000000"), good_sample("000000001")])
    # The tiny detector staged where this profile's registry expects its detector (for paper: yolo11l.pt).
    detector = tmp_path / "models" / ModelRegistry(profile, tmp_path / "models").entry("detector").path
    detector.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_models / ModelRegistry("tiny", tiny_models).entry("detector").path, detector)

    defs = build_definitions(_settings(tmp_path, profile))
    models = defs.resources["models"]
    assert models.profile == profile
    for name, value in EXPECTED[profile].items():
        assert profile_default(models.profile, name) == value

    with dagster_test_instance() as instance:
        register(instance, ["00000"])
        for job, selection in (("shard_ingest_job", None), ("person_detection_job", [AssetKey("person_boxes")])):
            result = defs.resolve_job_def(job).execute_in_process(
                partition_key="00000", instance=instance, run_config=QUIET, asset_selection=selection)
            assert result.success
    # What the recipe records is the effective value, which makes a profile switch recompute the boxes.
    marker = ShardStore(str(tmp_path / "store")).read_marker("person_boxes", "00000")
    assert marker["recipe"]["settings"]["max_det"] == EXPECTED[profile]["max_det"]


def test_the_environment_chooses_the_profile_only_through_settings_from_env(tmp_path):
    settings = Settings.from_env({"LAION_AUDIT_HOME": str(tmp_path), "LAION_AUDIT_MODEL_PROFILE": "paper"})
    assert build_definitions(settings).resources["models"].profile == "paper"
