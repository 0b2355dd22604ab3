"""Every model family the paper profile names, as a tiny model in the real layout, through the real loader;
the recorded substitute for Phi-3.5-vision; per-entry processor settings; greedy decoding that stays greedy."""

import json
import re
import shutil

import pytest
import torch
from PIL import Image

from laion_audit.models.prompts import GENDER_OPTIONS, build_prompts
from laion_audit.models.registry import PAPER, PHI35_VISION, TINY, ModelEntry, ModelRegistry
from laion_audit.models.vision_language import (
    UnsupportedModelError,
    VisionLanguageModel,
    check_native,
    greedy_settings,
)

PAPER_BY_ROLE = {entry.role: entry for entry in PAPER}
TINY_BY_ROLE = {entry.role: entry for entry in TINY}
# The transformers class each family must load as (written out, not taken from the registry).
NATIVE_CLASS = {"qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration", "llava_next": "LlavaNextForConditionalGeneration",
                "internvl": "InternVLForConditionalGeneration"}
REAL_LAYOUT = {"config.json", "generation_config.json", "model.safetensors", "processor_config.json",
               "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}


def _load(folder, role, **kwargs):
    entry = TINY_BY_ROLE[role]
    return VisionLanguageModel(folder, name=entry.describe(), fingerprint="test", device="cpu",
                               processor_kwargs=entry.processor_settings, **kwargs)


def _inputs(vlm, image, prompt):
    text = vlm.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}], add_generation_prompt=True)
    return vlm.processor(images=[image], text=[text], return_tensors="pt", **vlm.processor_kwargs)


def _argmax_loop(model, inputs, steps):
    """Greedy decoding written out: full forward pass, take the arg-max token, append, repeat (no generate())."""
    inputs = dict(inputs)
    tokens = []
    for _ in range(steps):
        with torch.no_grad():
            logits = model(**inputs).logits[:, -1]
        token = int(logits.argmax(-1))
        tokens.append(token)
        one = torch.tensor([[token]])
        inputs["input_ids"] = torch.cat([inputs["input_ids"], one], dim=1)
        inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(one)], dim=1)
        if "mm_token_type_ids" in inputs:
            inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(one)], dim=1)
    return tokens


@pytest.mark.parametrize("role", ["mllm_member_1", "mllm_member_2", "mllm_member_3", "captioner"])
def test_each_family_loads_runs_and_answers_through_the_real_loader(tiny_models, role):
    from skimage import data

    entry = TINY_BY_ROLE[role]
    folder = tiny_models / entry.path
    assert REAL_LAYOUT <= {p.name for p in folder.iterdir()}
    vlm = _load(folder, role)
    assert type(vlm.model).__name__ == NATIVE_CLASS[entry.family]

    image = Image.fromarray(data.astronaut()).crop((150, 20, 330, 400))
    prompt = build_prompts("gender", 1, seed=5)[0]
    inputs = _inputs(vlm, image, prompt.text)
    with torch.no_grad():
        logits = vlm.model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], len(vlm.processor.tokenizer))
    assert torch.isfinite(logits).all()

    answer = vlm.generate([image], [prompt.text], 4)[0]
    assert isinstance(answer, str) and answer
    parsed = prompt.parse(answer)
    assert parsed is None or parsed in GENDER_OPTIONS
    if role != "captioner":  # members' heads emit letters only, so the strict parser must map the first one
        assert re.fullmatch(r"[A-H]( [A-H])*", answer) and parsed == prompt.options[ord(answer[0]) - ord("A")]


def test_tiny_ensemble_mirrors_the_paper_families():
    for i in (1, 2, 3):
        role = f"mllm_member_{i}"
        assert TINY_BY_ROLE[role].family == PAPER_BY_ROLE[role].family
        assert TINY_BY_ROLE[role].substitute_for == PAPER_BY_ROLE[role].substitute_for
    assert [TINY_BY_ROLE[f"mllm_member_{i}"].family for i in (1, 2, 3)] == ["qwen2_5_vl", "llava_next", "internvl"]
    assert {e.family for e in PAPER} <= {e.family for e in TINY}


def test_member_one_is_a_recorded_substitute_for_phi_3_5_vision():
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    # The fact the substitute rests on: no native Phi-3.5-vision (model_type phi3_v) in this transformers.
    assert "phi3_v" not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    member = PAPER_BY_ROLE["mllm_member_1"]
    assert member.substitute_for == PHI35_VISION == "microsoft/Phi-3.5-vision-instruct"
    assert "no native class in transformers" in member.substitute_reason
    assert member.source == "Qwen/Qwen2.5-VL-7B-Instruct" and re.fullmatch(r"[0-9a-f]{40}", member.revision)
    assert member.family in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    assert member.describe() == "Qwen/Qwen2.5-VL-7B-Instruct (substitute for microsoft/Phi-3.5-vision-instruct)"
    for entry in PAPER:
        if entry.role.startswith("mllm_member_") or entry.role == "captioner":
            assert entry.family in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    with pytest.raises(ValueError, match="substitute_for and substitute_reason"):
        ModelEntry("mllm_member_1", "qwen2_5_vl", "x", "x", substitute_for=PHI35_VISION)


def test_the_name_votes_rows_carry_says_which_member_is_a_substitute(tiny_models):
    from laion_audit.defs.models import ModelsResource

    models = ModelsResource(profile="tiny", models_dir=str(tiny_models), trained_dir=str(tiny_models / "trained"))
    names = {role: models.vlm(role).name for role in ("mllm_member_1", "mllm_member_2", "mllm_member_3")}
    assert names["mllm_member_1"].endswith("(substitute for microsoft/Phi-3.5-vision-instruct)")
    assert not any("substitute" in names[r] for r in ("mllm_member_2", "mllm_member_3"))
    assert ModelRegistry("tiny", tiny_models).resolve("mllm_member_1").name == names["mllm_member_1"]


def test_a_folder_that_needs_remote_code_is_refused_not_replaced(tmp_path):
    # config.json as Phi-3.5-vision-instruct ships it (model_type and auto_map), no native class behind it.
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "phi3_v", "architectures": ["Phi3VForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_phi3_v.Phi3VConfig",
                     "AutoModelForCausalLM": "modeling_phi3_v.Phi3VForCausalLM"}}))
    with pytest.raises(UnsupportedModelError, match=r"phi3_v.*no native image-text-to-text class.*remote code"):
        check_native(tmp_path)
    with pytest.raises(UnsupportedModelError):
        VisionLanguageModel(tmp_path, name="phi", fingerprint="x", device="cpu")


def test_processor_settings_come_from_the_registry_entry(tiny_models):
    assert PAPER_BY_ROLE["captioner"].processor_settings == {"crop_to_patches": True, "max_patches": 12}
    assert PAPER_BY_ROLE["mllm_member_3"].processor_settings == {"crop_to_patches": True, "max_patches": 12}
    vlm = _load(tiny_models / TINY_BY_ROLE["captioner"].path, "captioner")
    assert vlm.settings(7)["processor"] == {"crop_to_patches": True, "max_patches": 2}
    wide = Image.new("RGB", (256, 64), (120, 40, 40))
    tiled = _inputs(vlm, wide, "a")
    # InternVL tiling: a 4:1 image with at most 2 tiles -> a 2x1 grid of 64-px tiles plus the thumbnail.
    assert tiled["pixel_values"].shape[0] == 3
    vlm.processor_kwargs = {"crop_to_patches": False}
    assert _inputs(vlm, wide, "a")["pixel_values"].shape[0] == 1


def test_greedy_overrides_the_checkpoints_sampling_and_repetition_penalty(tiny_models, tmp_path):
    folder = tmp_path / "member"
    shutil.copytree(tiny_models / TINY_BY_ROLE["mllm_member_3"].path, folder)
    shipped = json.loads((folder / "generation_config.json").read_text())
    shipped.update({"repetition_penalty": 5.0, "do_sample": True, "top_k": 3, "temperature": 3.0})
    (folder / "generation_config.json").write_text(json.dumps(shipped))

    vlm = _load(folder, "mllm_member_3")
    image = Image.new("RGB", (50, 90), (30, 90, 200))
    prompt = build_prompts("race", 1, seed=1)[0].text
    inputs = _inputs(vlm, image, prompt)
    expected = _argmax_loop(vlm.model, inputs, 5)
    expected_text = vlm.processor.decode(expected, skip_special_tokens=True).strip()
    assert vlm.generate([image], [prompt], 5) == [expected_text]

    # The same checkpoint run with its own generation config decodes differently: the override matters here.
    from transformers import AutoModelForImageTextToText, GenerationConfig

    naive = AutoModelForImageTextToText.from_pretrained(folder).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        out = naive.generate(**inputs, max_new_tokens=5)
    assert out[0, inputs["input_ids"].shape[1]:].tolist() != expected
    assert naive.generation_config.repetition_penalty == 5.0 and GenerationConfig().repetition_penalty is None

    settings = vlm.settings(5)
    assert settings["generation"]["do_sample"] is False and settings["generation"]["num_beams"] == 1
    assert settings["generation"]["repetition_penalty"] == 1.0 and settings["generation"]["max_new_tokens"] == 5
    assert settings["generation"]["top_k"] is None and settings["generation"]["temperature"] is None
    assert settings["overridden_from_checkpoint"] == {"repetition_penalty": 5.0, "do_sample": True, "top_k": 3,
                                                      "temperature": 3.0}


def test_tiny_qwen_ships_the_real_sampling_config_and_the_loader_records_the_override(tiny_models):
    folder = tiny_models / TINY_BY_ROLE["mllm_member_1"].path
    shipped = json.loads((folder / "generation_config.json").read_text())
    assert shipped["do_sample"] is True and shipped["repetition_penalty"] == 1.05
    vlm = _load(folder, "mllm_member_1")
    assert vlm.settings(5)["overridden_from_checkpoint"]["repetition_penalty"] == 1.05
    assert vlm.model.generation_config.do_sample is False


def test_generation_overrides_may_not_make_decoding_non_greedy():
    with pytest.raises(ValueError, match="would change greedy decoding"):
        greedy_settings({}, {"do_sample": True})
    assert greedy_settings({"eos_token_id": [3, 4], "top_k": 1}, {"pad_token_id": 0}) == {
        "do_sample": False, "num_beams": 1, "repetition_penalty": 1.0, "temperature": None, "top_p": None,
        "top_k": None, "eos_token_id": [3, 4], "pad_token_id": 0}


def test_tiny_open_clip_is_siglip_style_and_loads_as_a_classifier_backbone(tiny_models):
    from open_clip.model import CustomTextCLIP

    from laion_audit.models.image_classifier import build_classifier, load_backbone

    backbone, preprocess = load_backbone(f"local-dir:{tiny_models / TINY_BY_ROLE['classifier_backbone'].path}")
    assert isinstance(backbone, CustomTextCLIP)
    assert float(backbone.logit_bias.detach()) == -10.0  # the sigmoid loss's bias, absent from CLIP models
    assert backbone.text.attn_mask is None  # SigLIP's text tower is not causal
    assert backbone.visual.pool_type == "avg"
    image = preprocess(Image.new("RGB", (80, 120), (10, 200, 30))).unsqueeze(0)
    assert image.min() >= -1.0 and image.max() <= 1.0  # SigLIP normalisation (mean = std = 0.5)
    with torch.no_grad():
        assert build_classifier(backbone, 4)(image).shape == (1, 4)
