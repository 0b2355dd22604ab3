"""Bias transfer (spec §7): the formulas against hand-computed or planted values, word lists, the tiny SD pipeline.

The Dagster materialization of the assets on the demo shards is in test_annotation_chain.py (it reuses that
module's labelled chain rather than building a second one).
"""

import json
import math

import numpy as np
import polars as pl
import pytest

from laion_audit.annotation.detection import Detection
from laion_audit.audits.transfer_regressions import regressions
from laion_audit.audits.transfer_inputs import transfer_word_lists
from laion_audit.audits.transfer_runs import category_of, prompt_for
from laion_audit.audits.word_gender import dataset_bias, reduce_counts, word_gender_counts
from laion_audit.stats.model_bias import ClipBiasSums, clip_word_bias, female_share, kept_person
from laion_audit.stats.transfer_regression import fit_transfer


# ---------------------------------------------------------------- CLIP bias

def test_clip_bias_on_constructed_embeddings():
    # Female image along e1, male image at (0.6, 0.8); words e1 and e2. C = [[1, 0], [0.6, 0.8]]:
    # entries 1, 0, 0.6, 0.8 -> mean 0.6, variance (0.16 + 0.36 + 0 + 0.04) / 4 = 0.14, σ = √0.14.
    # An "unclear" image is not part of the image set; embeddings are scaled to check they get normalised.
    images = np.array([[3.0, 0.0], [0.6, 0.8], [0.0, 5.0]])
    words = np.array([[2.0, 0.0], [0.0, 0.5]])
    result = clip_word_bias(images, ["female", "male", "unclear"], words)
    sigma = math.sqrt(0.14)
    assert result.sigma == pytest.approx(sigma)
    assert result.bias == pytest.approx([(1 - 0.6) / sigma, (0 - 0.8) / sigma])  # 1.0690, -2.1381


def test_clip_bias_averages_within_each_gender():
    # Two female images (e1, e2), one male (e2); word e1: female mean 0.5, male 0; word e2: 0.5 vs 1.
    # C entries: 1,0 / 0,1 / 0,1 -> mean 0.5, σ = 0.5 -> biases (0.5 - 0) / 0.5 = 1 and (0.5 - 1) / 0.5 = -1.
    result = clip_word_bias(np.array([[1.0, 0], [0, 1.0], [0, 1.0]]), ["female", "female", "male"], np.eye(2))
    assert result.bias == pytest.approx([1.0, -1.0])


def test_streamed_clip_bias_gives_the_hand_computed_values_in_any_batches():
    # The first constructed example, fed one image per batch and with an extra "unclear" image in between.
    sums = ClipBiasSums(np.array([[2.0, 0.0], [0.0, 0.5]]))
    sums.add(np.array([[3.0, 0.0]]), ["female"])
    sums.add(np.array([[0.0, 5.0], [0.6, 0.8]]), ["unclear", "male"])
    result = sums.result()
    sigma = math.sqrt(0.14)
    assert (sums.n_female, sums.n_male) == (1, 1)
    assert result.sigma == pytest.approx(sigma)
    assert result.bias == pytest.approx([0.4 / sigma, -0.8 / sigma])


def test_clip_bias_needs_both_genders():
    with pytest.raises(ValueError, match="both genders"):
        clip_word_bias(np.eye(2), ["female", "female"], np.eye(2))


# ---------------------------------------------------------------- SD keep rule

def _box(conf, w, h):
    return Detection(10.0, 10.0, 10.0 + w, 10.0 + h, conf)


@pytest.mark.parametrize(("detections", "kept_index"), [
    ([_box(0.9, 40, 60)], 0),
    ([_box(0.9, 40, 60), _box(0.3, 50, 50)], 0),     # a box at conf <= 0.35 does not count
    ([_box(0.2, 40, 60), _box(0.9, 40, 60)], 1),
    ([_box(0.35, 40, 60)], None),                     # strictly above 0.35
    ([_box(0.9, 30, 60)], None),                      # min side strictly above 30 px
    ([_box(0.9, 31, 31)], 0),
    ([_box(0.9, 40, 60), _box(0.5, 35, 35)], None),   # two persons: not kept
    ([], None),
])
def test_sd_keep_rule_on_crafted_detections(detections, kept_index):
    kept = kept_person(detections)
    assert kept is (None if kept_index is None else detections[kept_index])


def test_female_share_counts_female_and_male_only():
    assert female_share(["female", "male", "female", "unclear", "mixed"]) == (pytest.approx(2 / 3), 2, 1)
    assert female_share(["unclear"]) == (None, 0, 0)


def test_prompt_and_category_follow_the_paper():
    assert prompt_for("engineer") == "a photo of an engineer"
    assert prompt_for("police officer") == "a photo of a police officer"
    assert category_of("a photo of an engineer") == "engineer"
    assert category_of("a photo of a police officer") == "police officer"


# ---------------------------------------------------------------- word-gender counts

def _samples(shard, rows):
    return pl.DataFrame({"shard": [shard] * len(rows), "key": [r[0] for r in rows], "caption": [r[1] for r in rows],
                         "status": [r[2] for r in rows]})


def _labels(shard, rows):
    return pl.DataFrame({"shard": [shard] * len(rows), "key": [r[0] for r in rows], "box_id": [r[1] for r in rows],
                         "label": [r[2] for r in rows], "status": ["ok"] * len(rows)},
                        schema={"shard": pl.String, "key": pl.String, "box_id": pl.Int64, "label": pl.String,
                                "status": pl.String})


SHARD_A = (
    _samples("00000", [("a1", "Nurse and doctor at the clinic", "ok"),   # woman + man
                       ("a2", "the doctors' lounge", "ok"),               # "doctors" is not "doctor"
                       ("a3", "A NURSE", "ok"),                           # woman + unclear person
                       ("a4", "police officer on duty", "ok"),            # man
                       ("a5", "nurse", "error"),                          # not read: does not count
                       ("a6", "nurse", "ok")]),                           # no person labelled
    _labels("00000", [("a1", 0, "female"), ("a1", 1, "male"), ("a2", 0, "male"), ("a3", 0, "female"),
                      ("a3", 1, "unclear"), ("a4", 0, "male"), ("a5", 0, "female"), ("a6", None, None)]),
)
SHARD_B = (
    _samples("00001", [("b1", "nurse, nurse, nurse", "ok"), ("b2", "Officer and police officer", "ok")]),
    _labels("00001", [("b1", 0, "female"), ("b2", 0, "male"), ("b2", 1, "male")]),
)
LISTS = {"roles": ["nurse", "doctor", "police officer"]}


def _as_dict(counts, rule):
    return {(r["word"], r["gender"]): (r["n_samples"], r["weighted"])
            for r in counts.filter(pl.col("rule") == rule).iter_rows(named=True)}


def test_word_gender_counts_per_shard_by_hand():
    counts = word_gender_counts(*SHARD_A, LISTS)
    # sample rule: a1 counts for both genders, a3 for female; a2 has no listed word; a5 (error), a6 (no person) out.
    assert _as_dict(counts, "sample") == {("nurse", "female"): (2, 2.0), ("nurse", "male"): (1, 1.0),
                                          ("doctor", "female"): (1, 1.0), ("doctor", "male"): (1, 1.0),
                                          ("police officer", "male"): (1, 1.0)}
    # person rule: a1 weighs 1/2 per gender; a3's unclear person stays in the denominator: female 1/2.
    assert _as_dict(counts, "person") == {("nurse", "female"): (2, 1.0), ("nurse", "male"): (1, 0.5),
                                          ("doctor", "female"): (1, 0.5), ("doctor", "male"): (1, 0.5),
                                          ("police officer", "male"): (1, 1.0)}


def test_word_gender_counts_reduce_over_shards_and_give_the_dataset_bias():
    reduced = reduce_counts([word_gender_counts(*SHARD_A, LISTS), word_gender_counts(*SHARD_B, LISTS)])
    # b1 repeats "nurse": one sample, one count; b2 is one sample with two men (sample rule: weight 1).
    assert _as_dict(reduced, "sample") == {("nurse", "female"): (3, 3.0), ("nurse", "male"): (1, 1.0),
                                           ("doctor", "female"): (1, 1.0), ("doctor", "male"): (1, 1.0),
                                           ("police officer", "male"): (2, 2.0)}
    table = dataset_bias(reduced, rule="sample", min_count=2, k_min=1)
    got = {r["word"]: r for r in table["words"].to_dicts()}
    assert got["nurse"]["bias"] == pytest.approx((3 - 1) / 4) and got["nurse"]["female_share"] == pytest.approx(0.75)
    assert got["doctor"]["bias"] == pytest.approx(0.0)
    assert got["police officer"]["bias"] == pytest.approx(-1.0)
    assert got["nurse"]["n_total"] == 4 and not got["nurse"]["counts_suppressed"]
    # With k = 2, nurse's one male sample is a small cell: its counts go and so does the ratio made from them;
    # a zero count is no cell (police officer keeps its -1).
    hidden = {r["word"]: r for r in dataset_bias(reduced, rule="sample", min_count=2, k_min=2)["words"].to_dicts()}
    assert hidden["nurse"]["counts_suppressed"] and hidden["nurse"]["n_male"] is None
    assert hidden["nurse"]["n_total"] is None and hidden["nurse"]["bias"] is None
    assert hidden["nurse"]["female_share"] is None
    assert not hidden["police officer"]["counts_suppressed"] and hidden["police officer"]["n_male"] == 2
    assert hidden["police officer"]["bias"] == pytest.approx(-1.0)
    # A total below k is never listed, whatever min_count says: k = 3 leaves only nurse (4).
    floor = dataset_bias(reduced, rule="sample", min_count=1, k_min=3)
    assert floor["words"]["word"].to_list() == ["nurse"] and floor["settings"]["listed_from_count"] == 3
    # min_count 3 drops doctor (2) and police officer (2): listed only as a count.
    strict = dataset_bias(reduced, rule="sample", min_count=3, k_min=1)
    assert strict["words"]["word"].to_list() == ["nurse"] and strict["below_min_count"] == {"roles": 2}
    assert any("word mode" in rule for rule in strict["settings"]["counting_rules"])


# ---------------------------------------------------------------- regression

def test_regression_on_a_hand_computed_example():
    # x = 1, 2, 3; y = 2, 4, 7: Sxx = 2, Sxy = 5, Syy = 114/9 -> slope 2.5, intercept -2/3, r = 5/√(2·114/9).
    fit = fit_transfer([1, 2, 3], [2, 4, 7])
    r = 5 / math.sqrt(2 * 114 / 9)
    assert fit["slope"] == pytest.approx(2.5) and fit["intercept"] == pytest.approx(-2 / 3)
    assert fit["pearson_r"] == pytest.approx(r) and fit["r2"] == pytest.approx(r * r)
    assert fit["pearson_ci_low"] is None  # Fisher's z needs n > 3


def test_regression_recovers_a_planted_linear_relation_within_its_ci():
    rng = np.random.default_rng(7)
    n, slope, intercept, sd_x, sd_e = 400, 0.8, 0.1, 0.5, 0.2
    x = rng.normal(0, sd_x, n)
    y = intercept + slope * x + rng.normal(0, sd_e, n)
    fit = fit_transfer(x, y)
    rho = slope * sd_x / math.sqrt(slope ** 2 * sd_x ** 2 + sd_e ** 2)  # 0.894: the population correlation
    assert fit["slope_ci_low"] < slope < fit["slope_ci_high"]
    assert fit["pearson_ci_low"] < rho < fit["pearson_ci_high"]
    assert fit["slope_p"] < 1e-6 and fit["n_words"] == n
    assert fit["r2"] == pytest.approx(fit["pearson_r"] ** 2)


def test_regression_refuses_too_few_or_constant_words():
    with pytest.raises(ValueError, match="at least 3"):
        fit_transfer([0.1, 0.2], [0.3, 0.4])
    with pytest.raises(ValueError, match="constant"):
        fit_transfer([0.1, 0.1, 0.1], [0.3, 0.4, 0.5])


def test_regressions_pair_words_and_sd_categories_with_the_dataset():
    dataset = [{"word_list": "roles", "word": w, "bias": b, "female_share": None if b is None else (1 + b) / 2}
               for w, b in [("nurse", 0.8), ("doctor", -0.2), ("pilot", -0.6), ("police person", -0.4),
                            ("chef", None)]]
    clip = {"clip_x": {"rows": [{"word_list": "roles", "word": w, "bias": 2 * b, "image_set": "s"}
                                for w, b in [("nurse", 0.8), ("doctor", -0.2), ("pilot", -0.6), ("chef", 0.3)]]
                       + [{"word_list": "roles", "word": "dentist", "bias": None, "image_set": "s"}]}}
    sd = {"sd_x": {"prompts": [{"category": "nurse", "female_share": 0.9}, {"category": "doctor", "female_share": 0.4},
                               {"category": "police", "female_share": 0.3},   # matched as "police person"
                               {"category": "pilot", "female_share": None}]}}  # skipped prompt
    result = regressions(dataset, clip, sd)
    by_family = {f["family"]: f for f in result["fits"]}
    assert by_family["clip"]["n_words"] == 3 and by_family["clip"]["slope"] == pytest.approx(2.0)
    assert by_family["clip"]["r2"] == pytest.approx(1.0)
    assert by_family["stable_diffusion"]["n_words"] == 3
    assert len(result["plots"]) == 2 and result["plots"][0][1].startswith(b"\x89PNG")
    assert {row["family"] for row in result["summary"]} == {"clip", "stable_diffusion"}


# ---------------------------------------------------------------- word lists

def test_authored_list_is_the_default_and_loads():
    lists = transfer_word_lists()
    assert list(lists) == ["gender_bias_categories"]
    assert "nurse" in lists["gender_bias_categories"] and "police officer" in lists["gender_bias_categories"]
    assert not {"actress", "waitress", "woman", "man"} & set(lists["gender_bias_categories"])


def test_paper_lists_load_from_their_shared_formats(shared_data):
    folder = shared_data / "paper_lexicons"
    lists = transfer_word_lists(sobit_path=str(folder / "sobit_taxonomy.json"),
                                guilbeault_path=str(folder / "guilbeault_social_categories.txt"))
    assert len(lists["sobit"]) == 400  # the union of the 9 categories (spec §7)
    lines = (folder / "guilbeault_social_categories.txt").read_text().splitlines()
    assert len(lines) == 3489  # one term per line; two differ only in case, and terms are lower-cased
    assert len(lists["guilbeault"]) == len({line.strip().lower() for line in lines}) and lists["guilbeault"][0] == "male"


# ---------------------------------------------------------------- tiny Stable Diffusion

def test_tiny_sd_pipeline_loads_and_generates_through_diffusers(tiny_models):
    import json

    from laion_audit.models.diffusion import StableDiffusionGenerator
    from laion_audit.models.registry import ModelRegistry

    resolved = ModelRegistry("tiny", tiny_models).resolve("sd_tiny")
    assert json.loads((resolved.path / "model_index.json").read_text())["_class_name"] == "StableDiffusionPipeline"
    generator = StableDiffusionGenerator(resolved.path, name=resolved.name, fingerprint=resolved.fingerprint,
                                         random_weights=True)
    assert type(generator.pipeline).__name__ == "StableDiffusionPipeline"
    first = generator.generate("a photo of a nurse", [0, 1], steps=2, size=64)
    again = generator.generate("a photo of a nurse", [1], steps=2, size=64)
    assert [image.size for image in first] == [(64, 64), (64, 64)]
    # An image is its seed's: seed 1 alone and seed 1 in a batch of two agree up to float rounding (batched CPU
    # kernels need not be bit-identical), while two seeds give different images.
    same = np.abs(np.asarray(first[1]).astype(int) - np.asarray(again[0]).astype(int))
    other = np.abs(np.asarray(first[0]).astype(int) - np.asarray(first[1]).astype(int))
    assert same.mean() < 1 and same.max() <= 16 and other.mean() > 20


# ---------------------------------------------------------------- wiring

def test_model_bias_assets_are_partitioned_by_model_and_ask_for_a_gpu():
    from dagster import AssetKey

    from laion_audit.definitions import build_definitions
    from laion_audit.models.registry import clip_roles, sd_roles
    from laion_audit.ops.settings import Settings

    settings = Settings.from_env()
    graph = build_definitions(settings).resolve_asset_graph()
    profile = settings.model_profile
    expected = {"clip_model_bias": (clip_roles(profile), "clip_weights"), "sd_model_bias": (sd_roles(profile), "sd_weights")}
    for name, (roles, weights) in expected.items():
        node = graph.get(AssetKey(name))
        assert node.partitions_def.get_partition_keys() == roles
        assert AssetKey(weights) in node.parent_keys
        tags = node.assets_def.op.tags["dagster-k8s/config"]
        assert "nvidia.com/gpu" in (tags if isinstance(tags, str) else json.dumps(tags))
        assert node.assets_def.op.pool == "gpu"
    assert {AssetKey("gender_classifier"), AssetKey("detector_weights")} <= graph.get(AssetKey("sd_model_bias")).parent_keys
    assert graph.get(AssetKey("word_gender_counts")).partitions_def.name == "laion_shards"
    regression = graph.get(AssetKey("bias_transfer_regression")).parent_keys
    assert {AssetKey("word_gender_cooccurrence"), AssetKey("clip_model_bias"), AssetKey("sd_model_bias")} <= regression
