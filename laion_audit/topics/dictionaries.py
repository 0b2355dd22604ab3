"""Train several SAEs on the stored caption embeddings and publish them as one checkpoint folder.

The folder ``<trained_dir>/sae_dictionaries/<sha16>/`` holds one safetensors file per SAE and ``saes.json``
(architectures, seeds, settings, metrics, the embeddings it was trained on); ``current.json`` beside it names the
folder in use, and its sha256 is the asset's data version, as for the classifiers (annotation/classifiers.py).
Trained on restricted embeddings, the folder is owner-only. Its metrics (MSE, variance explained, L0, dead
features) are not counts of persons and carry no demographic cell.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from laion_audit.models.fingerprint import fingerprint_path
from laion_audit.topics.caption_embedding import EmbeddingStore
from laion_audit.topics.sae import SAEConfig, TopKSAE, build_sae, evaluate, train

META = "saes.json"
CURRENT = "current.json"


def plan(architectures: list[str], seeds: int, k_values: list[int], expansions: list[int]
         ) -> list[dict[str, Any]]:
    """One SAE per architecture × k × expansion × seed (seeds 0..seeds-1); the paper averages 24."""
    return [{"architecture": a, "k": k, "expansion": e, "seed": s}
            for a in architectures for k in k_values for e in expansions for s in range(seeds)]


def _chunks(source: EmbeddingStore):
    for _, _, vectors in source.passes():
        yield torch.from_numpy(vectors)


def train_dictionaries(source: EmbeddingStore, specs: list[dict[str, Any]], base: SAEConfig, out_root: Path, *,
                       device: str = "cpu", record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train every SAE of ``specs`` on batches streamed from ``source``, evaluate each on one pass, publish."""
    dim = source.dim()
    out_root.mkdir(parents=True, exist_ok=True)
    tmp = out_root / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir(mode=0o700)
    entries = []
    for i, spec in enumerate(specs):
        config = SAEConfig(**{**base.__dict__, "k": spec["k"], "expansion": spec["expansion"]})
        sae = build_sae(spec["architecture"], dim, config, spec["seed"])
        batches = (torch.from_numpy(b) for b in source.batches(config.batch_size, seed=spec["seed"]))
        trainer = train(sae, batches, config, device)
        metrics = evaluate(sae, _chunks(source), device).as_dict()
        name = f"sae_{i:02d}_{spec['architecture']}_k{spec['k']}_x{spec['expansion']}_seed{spec['seed']}.safetensors"
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in sae.state_dict().items()}, str(tmp / name))
        entries.append({**spec, "file": name, "dim": dim, "dict_size": sae.dict_size, "config": config.as_dict(),
                        "threshold": float(sae.threshold) if hasattr(sae, "threshold") else None,
                        "final_loss": trainer.state.losses[-1], "embeddings_seen": trainer.state.seen,
                        "metrics": metrics})
    (tmp / META).write_text(json.dumps({"dim": dim, "saes": entries, **(record or {})}, indent=1, sort_keys=True))
    for path in tmp.iterdir():
        os.chmod(path, 0o600)
    fingerprint = fingerprint_path(tmp)
    final = out_root / fingerprint[:16]
    if final.exists():
        shutil.rmtree(tmp)
    else:
        tmp.rename(final)
    pointer = out_root / f".current-{uuid.uuid4().hex}.json"
    pointer.write_text(json.dumps({"fingerprint": fingerprint, "folder": final.name}))
    pointer.replace(out_root / CURRENT)
    return {"fingerprint": fingerprint, "folder": str(final), "meta": json.loads((final / META).read_text())}


def current_dictionaries(out_root: Path) -> tuple[Path, str]:
    pointer = out_root / CURRENT
    if not pointer.is_file():
        raise FileNotFoundError(f"no trained SAEs at {out_root}: materialize sae_dictionaries first")
    current = json.loads(pointer.read_text())
    return out_root / current["folder"], current["fingerprint"]


def load_dictionaries(folder: Path) -> tuple[dict[str, Any], list[TopKSAE]]:
    from safetensors.torch import load_file

    meta = json.loads((folder / META).read_text())
    saes = []
    for entry in meta["saes"]:
        config = SAEConfig(**{**{k: v for k, v in entry["config"].items() if k != "betas"},
                              "betas": tuple(entry["config"]["betas"])})
        sae = build_sae(entry["architecture"], entry["dim"], config, entry["seed"])
        sae.load_state_dict(load_file(str(folder / entry["file"])))
        saes.append(sae.eval())
    return meta, saes
