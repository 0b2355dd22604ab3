"""The model registry: which weights each pipeline role uses, per profile, and where they live on disk.

Two profiles. `paper` names the exact models of Girrbach et al. (YOLO11-l, SigLIP B/16 image towers for the
classifiers, InternVL3-8B captions, a Phi-3.5-vision / LLaVA-NeXT / InternVL3 ensemble for consensus votes);
`tiny` names small random-weight models of the same architectures that `laion-audit models init-tiny DIR`
builds offline. Both load through the same loaders. A profile never falls back to the other: a missing file
is an error that names the path and the command that stages it.

Importing this module is cheap (no torch): the Dagster code server and sensors import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from laion_audit.models.fingerprint import fingerprint_path

MANIFEST = "manifest.json"


class MissingWeightsError(FileNotFoundError):
    """Weights for a profile entry are not staged where the registry expects them."""


@dataclass(frozen=True)
class ModelEntry:
    role: str  # pipeline role: detector, classifier_backbone, captioner, mllm_member_1..3
    family: str  # yolo | open_clip | internvl | llava | phi3_vision
    source: str  # hub id or weights file name
    path: str  # relative to the profile's models dir
    revision: str = "main"
    licence: str = "see source"
    random_weights: bool = False


PAPER = (
    ModelEntry("detector", "yolo", "yolo11l.pt", "yolo/yolo11l.pt", "8.3", "AGPL-3.0"),
    ModelEntry("classifier_backbone", "open_clip", "ViT-B-16-SigLIP/webli", "open_clip/ViT-B-16-SigLIP-webli",
               "webli", "Apache-2.0"),
    ModelEntry("captioner", "internvl", "OpenGVLab/InternVL3-8B-hf", "hf/OpenGVLab--InternVL3-8B-hf", "main", "MIT"),
    ModelEntry("mllm_member_1", "phi3_vision", "microsoft/Phi-3.5-vision-instruct",
               "hf/microsoft--Phi-3.5-vision-instruct", "main", "MIT"),
    ModelEntry("mllm_member_2", "llava", "llava-hf/llava-v1.6-vicuna-7b-hf", "hf/llava-hf--llava-v1.6-vicuna-7b-hf",
               "main", "Llama 2 Community"),
    ModelEntry("mllm_member_3", "internvl", "OpenGVLab/InternVL3-8B-hf", "hf/OpenGVLab--InternVL3-8B-hf", "main", "MIT"),
    ModelEntry("hate_speech", "text_classifier", "pysentimiento/bertweet-hate-speech",
               "hf/pysentimiento--bertweet-hate-speech", "main", "non-commercial (see model card)"),
)

TINY = (
    ModelEntry("detector", "yolo", "yolo11n.yaml (random, person bias raised)", "yolo11-tiny.pt",
               licence="AGPL-3.0 (architecture)", random_weights=True),
    ModelEntry("classifier_backbone", "open_clip", "tiny ViT (random)", "open_clip_tiny",
               licence="MIT (architecture)", random_weights=True),
    ModelEntry("captioner", "internvl", "tiny InternVL (random)", "internvl_tiny_captioner", random_weights=True),
    ModelEntry("mllm_member_1", "internvl", "tiny InternVL member 1 (random)", "internvl_tiny_member_1",
               random_weights=True),
    ModelEntry("mllm_member_2", "internvl", "tiny InternVL member 2 (random)", "internvl_tiny_member_2",
               random_weights=True),
    ModelEntry("mllm_member_3", "internvl", "tiny InternVL member 3 (random)", "internvl_tiny_member_3",
               random_weights=True),
    ModelEntry("hate_speech", "text_classifier", "tiny BERT hate-speech (random)", "hate_speech_tiny",
               random_weights=True),
)

PROFILES = {"paper": PAPER, "tiny": TINY}

# Run-config defaults that depend on the profile. A random-weight tiny detector fires everywhere, so its boxes
# are capped; tiny models train and caption in seconds. A config value left at None takes the profile's value,
# and the effective value is what a recipe records. The profile is the Settings object's (model_profile), as
# the ModelsResource carries it; nothing here reads the environment.
# votes_sample_rate: the share of valid persons the ensemble votes on. The demo's few persons all need votes
# for enough unanimous crops to train on; at LAION scale 1% is a start (the paper's gender set was a curated
# 300k crops whose draw is not public, spec §2): set it for your dataset's size.
PROFILE_DEFAULTS = {
    "paper": {"max_det": 300, "classifier_epochs": 10, "classifier_lr": 1e-5, "caption_max_new_tokens": 256,
              "votes_sample_rate": 0.01},
    "tiny": {"max_det": 4, "classifier_epochs": 3, "classifier_lr": 1e-3, "caption_max_new_tokens": 24,
             "votes_sample_rate": 1.0},
}


def profile_default(profile: str, name: str, value=None):
    """``value`` when set, else the profile's default for ``name``."""
    return PROFILE_DEFAULTS[profile][name] if value is None else value
STAGE_COMMAND = {
    "tiny": "laion-audit models init-tiny {dir}",
    "paper": "laion-audit models fetch --profile paper {dir}  (on a connected machine, then copy the folder)",
}


@dataclass(frozen=True)
class ResolvedModel:
    entry: ModelEntry
    path: Path
    fingerprint: str

    @property
    def name(self) -> str:
        return self.entry.source if not self.entry.random_weights else f"{self.entry.role}:{self.entry.path}"


def _stat_signature(path: Path) -> tuple:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)


@cache
def _fingerprint_for(path: str, signature: tuple) -> str:
    return fingerprint_path(path)


def current_fingerprint(path: Path) -> str:
    """The weights' sha256 as they are now on disk, hashed once per process per (size, mtime) state.

    A manifest's recorded fingerprint is never trusted on its own: a weight file swapped in place must give a
    new fingerprint, or lineage would name the old model.
    """
    return _fingerprint_for(str(path), _stat_signature(path))


class ModelRegistry:
    """Resolves roles to staged weights for one profile, fingerprinted as they are on disk now (the manifest
    written by init-tiny or fetch is a record, not a source of truth)."""

    def __init__(self, profile: str, models_dir: str | Path):
        if profile not in PROFILES:
            raise ValueError(f"unknown model profile {profile!r}; choose one of {sorted(PROFILES)}")
        self.profile = profile
        self.models_dir = Path(models_dir)
        self._entries = {entry.role: entry for entry in PROFILES[profile]}

    def entry(self, role: str) -> ModelEntry:
        if role not in self._entries:
            raise KeyError(f"profile {self.profile!r} has no model for role {role!r}")
        return self._entries[role]

    def resolve(self, role: str) -> ResolvedModel:
        entry = self.entry(role)
        path = self.models_dir / entry.path
        if not path.exists():
            command = STAGE_COMMAND[self.profile].format(dir=self.models_dir)
            raise MissingWeightsError(
                f"weights for {role} ({entry.source}, profile {self.profile}) not found at {path}; stage them with: "
                f"{command}"
            )
        return ResolvedModel(entry, path, current_fingerprint(path))

    def fingerprints(self, roles: list[str]) -> dict[str, str]:
        return {role: self.resolve(role).fingerprint for role in roles}
