"""How GPU steps ask Kubernetes for a GPU: `dagster-k8s/config` op tags, the `gpu` pool, the backfill policy.

Op tags (not run tags) because step pods of the k8s_job_executor do not inherit run-level k8s config.
The shared-memory volume is there because PyTorch DataLoader workers exchange batches through /dev/shm,
which is 64 MiB by default in a pod. Values come from Settings.gpu so a cluster can name its own GPU
node labels and taints without a code change.
"""

from typing import Any

from dagster import Backoff, BackfillPolicy, Jitter, RetryPolicy

from laion_audit.ops.settings import GpuSettings

GPU_POOL = "gpu"


def gpu_k8s_config(gpu: GpuSettings) -> dict[str, Any]:
    return {
        "container_config": {
            "resources": {
                "limits": {"nvidia.com/gpu": str(gpu.gpus_per_step), "memory": gpu.step_memory},
                "requests": {"nvidia.com/gpu": str(gpu.gpus_per_step), "memory": gpu.step_memory, "cpu": "4"},
            },
            "volume_mounts": [{"name": "dshm", "mount_path": "/dev/shm"}],
        },
        "pod_spec_config": {
            "node_selector": dict(gpu.node_selector),
            "tolerations": [dict(t) for t in gpu.tolerations],
            "volumes": [{"name": "dshm", "empty_dir": {"medium": "Memory", "size_limit": gpu.shm_size}}],
        },
        "pod_template_spec_metadata": {
            "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
        },
    }


def gpu_op_tags(gpu: GpuSettings) -> dict[str, Any]:
    return {"dagster-k8s/config": gpu_k8s_config(gpu)}


def gpu_backfill_policy(gpu: GpuSettings) -> BackfillPolicy:
    """Several shards per run so a pod loads each model once; ~15-60 GPU-minutes per run at LAION scale."""
    return BackfillPolicy.multi_run(max_partitions_per_run=gpu.shards_per_run)


# Retries are for faults that can heal (CUDA out of memory under a busy neighbour, a storage hiccup); a missing
# or unreadable input raises Failure(allow_retries=False) in shard_runs and is not retried.
GPU_RETRY_POLICY = RetryPolicy(max_retries=2, delay=30, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)
