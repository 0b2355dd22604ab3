"""Every GPU asset asks Kubernetes for a GPU through op tags, sits in the `gpu` pool and backfills in chunks."""

import json

import pytest

from laion_audit.definitions import build_definitions

GPU_ASSETS = ["person_boxes", "gender_votes", "race_votes", "gender_labels", "race_labels", "person_captions",
              "caption_embeddings"]


@pytest.fixture(scope="module")
def graph():
    return build_definitions().resolve_asset_graph()


@pytest.mark.parametrize("name", GPU_ASSETS)
def test_gpu_assets_carry_k8s_gpu_config(graph, name):
    from dagster import AssetKey

    node = graph.get(AssetKey(name))
    assets_def = node.assets_def
    config = assets_def.op.tags["dagster-k8s/config"]
    config = json.loads(config) if isinstance(config, str) else config  # Dagster stores dict tags as JSON
    assert config["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert config["pod_spec_config"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert config["pod_spec_config"]["node_selector"]
    volume = config["pod_spec_config"]["volumes"][0]
    assert volume["empty_dir"]["medium"] == "Memory"
    assert config["container_config"]["volume_mounts"][0]["mount_path"] == "/dev/shm"
    assert assets_def.op.pool == "gpu"
    assert node.backfill_policy.max_partitions_per_run > 1


def test_model_assets_are_upstream_of_labels(graph):
    from dagster import AssetKey

    upstream = graph.get(AssetKey("gender_labels")).parent_keys
    assert AssetKey("gender_classifier") in upstream
    assert AssetKey("detector_weights") in graph.get(AssetKey("person_boxes")).parent_keys
    assert AssetKey("classifier_backbone_weights") in graph.get(AssetKey("gender_classifier")).parent_keys


@pytest.mark.parametrize("name", GPU_ASSETS)
def test_step_job_built_by_dagster_k8s_is_a_valid_gpu_job(graph, name):
    """dagster-k8s's own job construction from the asset's op tags, schema-checked offline."""
    import kubernetes_validate
    from dagster import AssetKey
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config
    from kubernetes import client

    op = graph.get(AssetKey(name)).assets_def.op
    job_config = DagsterK8sJobConfig(job_image="registry.example.com/laion-audit:0123abc",
                                     dagster_home="/opt/dagster/dagster_home", image_pull_policy="Always",
                                     instance_config_map="dagster-instance")
    job = construct_dagster_k8s_job(job_config, ["dagster", "api", "execute_step"], f"dagster-step-{name}",
                                    user_defined_k8s_config=get_user_defined_k8s_config(op.tags),
                                    component="step_worker")
    manifest = client.ApiClient().sanitize_for_serialization(job)
    kubernetes_validate.validate(manifest, "1.30", strict=True)
    spec = manifest["spec"]["template"]["spec"]
    assert manifest["spec"]["backoffLimit"] == 0
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}, "name": "dshm"} in spec["volumes"]
    assert {"mountPath": "/dev/shm", "name": "dshm"} in spec["containers"][0]["volumeMounts"]


def test_cpu_jobs_run_every_shard_in_the_run_process_under_the_k8s_executor(tmp_path):
    """Ingest and group counts are CPU work: one pod per range run, not one step pod per asset (82,816 pods for
    41,408 shards otherwise); the GPU stages keep the Kubernetes step executor."""
    from dataclasses import replace

    from laion_audit.definitions import build_definitions

    from .dagster_harness import settings_for

    settings = replace(settings_for(tmp_path / "shards", tmp_path / "store"), executor="k8s")
    defs = build_definitions(settings)
    for name in ("shard_ingest_job", "group_counts_job"):
        assert defs.resolve_job_def(name).executor_def.name == "in_process", name
    for name in ("person_detection_job", "person_labels_job"):
        assert defs.resolve_job_def(name).executor_def.name == "k8s", name
