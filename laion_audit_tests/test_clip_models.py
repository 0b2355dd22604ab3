"""The registry's CLIP models (roles clip_*): the paper's LAION-400M checkpoints named as open_clip knows them,
tiny CLIPs of three sizes through the real open_clip loader, zero-shot word embeddings, and their weights as a
partitioned observable source."""

import shutil

import numpy as np
import pytest
from PIL import Image

from laion_audit.models.clip_embedder import ClipEmbedder
from laion_audit.models.registry import PAPER, TINY, ModelRegistry, clip_roles

# Girrbach et al.'s 12 LAION-400M checkpoints (spec §7), written out, plus OpenAI's ViT-B/32 (Birhane et al.).
PAPER_CHECKPOINTS = {
    "EVA01-g-14/laion400m_s11b_b41k", "convnext_base/laion400m_s13b_b51k", "ViT-B-32/openai",
    *(f"{name}/laion400m_e{epoch}" for name in ("ViT-B-32", "ViT-B-32-quickgelu", "ViT-B-16", "ViT-B-16-plus-240",
                                                "ViT-L-14") for epoch in (31, 32)),
}


def _embedder(tiny_models, role):
    resolved = ModelRegistry("tiny", tiny_models).resolve(role)
    return ClipEmbedder(resolved.path, resolved.entry.source, name=resolved.name, fingerprint=resolved.fingerprint,
                        random_weights=True, device="cpu")


def test_paper_profile_names_the_laion400m_checkpoints_open_clip_can_load():
    from open_clip.pretrained import get_pretrained_cfg

    entries = [entry for entry in PAPER if entry.role in clip_roles("paper")]
    assert {entry.source for entry in entries} == PAPER_CHECKPOINTS
    for entry in entries:
        name, tag = entry.source.split("/")
        assert get_pretrained_cfg(name, tag), entry.source  # open_clip knows where to download it from
        assert entry.scale_settings["data_millions"] > 0 and entry.scale_settings["samples_seen_millions"] > 0
    assert len({entry.path for entry in entries}) == len(entries)


def test_tiny_clips_load_embed_and_differ_in_size(tiny_models):
    roles = clip_roles("tiny")
    assert len(roles) == 3
    images = [Image.new("RGB", (80, 60), color) for color in ("red", "blue", "white")]
    sizes = []
    for role in roles:
        clip = _embedder(tiny_models, role)
        image = clip.image_embeddings(images, batch_size=2)
        text = clip.text_embeddings(["a photo of a nurse", "a photo of a judge"])
        assert image.shape[0] == 3 and text.shape == (2, image.shape[1])
        np.testing.assert_allclose(np.linalg.norm(image, axis=1), 1, rtol=1e-5)
        raw = clip.image_embeddings(images, normalize=False)
        np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), image, atol=1e-5)
        sizes.append(clip.parameter_counts()["image_mparams"])
    assert sizes == sorted(sizes) and len(set(sizes)) == 3


def test_zero_shot_word_embedding_is_the_renormalised_mean_of_normalised_template_embeddings(tiny_models):
    clip = _embedder(tiny_models, "clip_tiny_s")
    templates = ["itap of a {}.", "art of the {}."]
    words = ["nurse", "judge"]
    got = clip.word_embeddings(words, templates)
    for i, word in enumerate(words):
        per_template = clip.text_embeddings([t.format(word) for t in templates], normalize=False)
        per_template = per_template / np.linalg.norm(per_template, axis=1, keepdims=True)
        mean = per_template.mean(axis=0)
        np.testing.assert_allclose(got[i], mean / np.linalg.norm(mean), atol=1e-5)
    assert clip.word_embeddings(["nurse"]).shape == (1, got.shape[1])  # default: open_clip's 7 ImageNet templates


def test_clip_weights_are_observed_per_model_and_a_swap_changes_only_that_model(tiny_models, tmp_path):
    from .dagster_harness import dagster_test_instance, settings_for

    from laion_audit.definitions import build_definitions

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    settings = settings_for(tmp_path / "shards", tmp_path / "store")
    settings = type(settings)(**{**settings.__dict__, "models_dir": str(models)})
    defs = build_definitions(settings)
    with dagster_test_instance() as instance:
        def observed():
            assert defs.resolve_job_def("observe_clip_weights_job").execute_in_process(instance=instance).success
            from dagster import AssetKey

            versions = {}
            for role in clip_roles("tiny"):
                record = instance.get_latest_data_version_record(AssetKey("clip_weights"), is_source=True,
                                                                 partition_key=role)
                versions[role] = record.asset_observation.tags["dagster/data_version"] if record else None
            return versions

        before = observed()
        assert all(before.values()) and len(set(before.values())) == 3
        entry = next(entry for entry in TINY if entry.role == "clip_tiny_m")
        weights = models / entry.path / "open_clip_model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
        after = observed()
    assert after["clip_tiny_m"] != before["clip_tiny_m"]
    assert {role: v for role, v in after.items() if role != "clip_tiny_m"} == \
        {role: v for role, v in before.items() if role != "clip_tiny_m"}


def test_missing_clip_weights_name_the_staging_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="init-tiny"):
        ModelRegistry("tiny", tmp_path).resolve("clip_tiny_l")
