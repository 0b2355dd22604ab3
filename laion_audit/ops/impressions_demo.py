"""The demo's facial impression and CLIP threshold step: a generated OMI-layout set (40 faces-like images with
planted ratings) scored by the tiny CLIPs, and the threshold audit over the demo's shards, through the same jobs a
user runs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

DEMO_STIMULI = 40


def run_impressions_step(defs, instance, settings, shard_keys: list[str], run: Callable, out: Callable[[str], None]
                         ) -> list[str]:
    """Run both analyses; print their headline figures; return the failures (empty when all succeeded).

    ``run(defs, job, partition, instance, out)`` executes one job and returns its failure message or None.
    """
    from laion_audit.models.registry import clip_roles
    from laion_audit.sample_data.impressions import write_impressions_dataset

    started = time.monotonic()
    omi = Path(settings.omi_dir)
    if not (omi / "attribute_means.csv").is_file():
        write_impressions_dataset(omi, DEMO_STIMULI)
    out(f"  ratings: {omi} ({DEMO_STIMULI} generated stimuli, One Million Impressions layout)")
    steps = [("observe_clip_weights_job", None)]
    steps += [("facial_impression_associations_job", role) for role in clip_roles(settings.model_profile)]
    steps += [("facial_impression_bias_job", None)]
    steps += [("clip_similarity_job", key) for key in shard_keys] + [("clip_threshold_audit_job", None)]
    failures = [f for job, partition in steps if (f := run(defs, job, partition, instance, out)) is not None]
    reports = Path(settings.store_root) / "reports"
    bias_path, audit_path = reports / "facial_impression_bias.json", reports / "clip_threshold_audit.json"
    if bias_path.is_file():
        bias = json.loads(bias_path.read_text())
        for row in bias["irr_correlation"]:
            out(f"  IRR vs model-human similarity, family {row['family']}: Spearman rho {row['rho']:.3f} "
                f"({len(row['models'])} models)")
        frobenius = ", ".join(f"{role} {s['frobenius_with_human']:.3f}" for role, s in bias["model_structure"].items())
        out(f"  normalized Frobenius <H,M>: {frobenius}")
    if audit_path.is_file():
        audit = json.loads(audit_path.read_text())
        for section in audit["by_version_set"].values():
            kept = ", ".join(f"{row['model']} {row['kept']}/{row['scored']}" for row in section["shares"])
            out(f"  kept at cosine >= {audit['threshold']}: {kept}")
        for probe in audit["probes"]:
            out(f"  probe {probe['probe']} on {probe['model']}: A {probe['similarity_a']:.3f}, "
                f"B {probe['similarity_b']:.3f}")
    for failure in failures:
        out(f"  FAILED: {failure}")
    out(f"  reports in {reports} ({time.monotonic() - started:.1f}s; tiny random-weight CLIPs: the numbers "
        "exercise the pipeline, they say nothing about CLIP)")
    return failures
