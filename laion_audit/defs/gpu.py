"""How GPU steps ask Kubernetes for a GPU: `dagster-k8s/config` op tags, the `gpu` pool, the backfill policy.

Op tags (not run tags) because step pods of the k8s_job_executor do not inherit run-level k8s config.
The shared-memory volume is there because PyTorch DataLoader workers exchange batches through /dev/shm,
which is 64 MiB by default in a pod. Values come from the environment so a cluster can name its own GPU
node labels and taints without a code change.
"""

import json
import os
from typing import Any

from dagster import BackfillPolicy, RetryPolicy, Backoff, Jitter

GPU_POOL = "gpu"


def gpu_k8s_config(
    gpus: int | None = None,
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    shm_size: str | None = None,
    memory: str | None = None,
) -> dict[str, Any]:
    gpus = gpus if gpus is not None else int(os.environ.get("LAION_AUDIT_GPUS_PER_STEP", "1"))
    node_selector = node_selector if node_selector is not None else json.loads(
        os.environ.get("LAION_AUDIT_GPU_NODE_SELECTOR", '{"nvidia.com/gpu.present": "true"}')
    )
    tolerations = tolerations if tolerations is not None else json.loads(
        os.environ.get(
            "LAION_AUDIT_GPU_TOLERATIONS",
            '[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]',
        )
    )
    shm_size = shm_size or os.environ.get("LAION_AUDIT_GPU_SHM_SIZE", "16Gi")
    memory = memory or os.environ.get("LAION_AUDIT_GPU_STEP_MEMORY", "48Gi")
    return {
        "container_config": {
            "resources": {
                "limits": {"nvidia.com/gpu": str(gpus), "memory": memory},
                "requests": {"nvidia.com/gpu": str(gpus), "memory": memory, "cpu": "4"},
            },
            "volume_mounts": [{"name": "dshm", "mount_path": "/dev/shm"}],
        },
        "pod_spec_config": {
            "node_selector": node_selector,
            "tolerations": tolerations,
            "volumes": [{"name": "dshm", "empty_dir": {"medium": "Memory", "size_limit": shm_size}}],
        },
        "pod_template_spec_metadata": {
            "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
        },
    }


def gpu_op_tags() -> dict[str, Any]:
    return {"dagster-k8s/config": gpu_k8s_config()}


def gpu_backfill_policy() -> BackfillPolicy:
    """Several shards per run so a pod loads each model once; ~15-60 GPU-minutes per run at LAION scale."""
    return BackfillPolicy.multi_run(
        max_partitions_per_run=int(os.environ.get("LAION_AUDIT_GPU_SHARDS_PER_RUN", "16"))
    )


GPU_RETRY_POLICY = RetryPolicy(max_retries=2, delay=30, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)
