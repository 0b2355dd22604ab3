"""Facial impression bias: the statistics on constructed inputs whose answers are computed by hand here, the
shipped prompts and IRR, the ratings-folder checks, and the generated dataset's planted relations."""

import csv
import math
import shutil

import numpy as np
import pytest
from scipy.stats import t as student_t

from laion_audit.impressions.associations import Associations, association_scores, associations_table
from laion_audit.impressions.bias import (
    correlation_matrix,
    family_irr_correlation,
    model_family,
    model_human_similarity,
    normalized_frobenius,
    scale_regression,
    ward_clustering,
)
from laion_audit.impressions.lexicon import load_human_irr, load_prompt_pairs
from laion_audit.impressions.ratings import RatingsDatasetError, load_ratings
from laion_audit.sample_data.impressions import write_impressions_dataset

ATTRIBUTES = [pair.attribute for pair in load_prompt_pairs()]


# ------------------------------------------------------------------ associations and similarity
def test_association_is_the_difference_of_cosines_of_raw_embeddings():
    angles = np.array([0.0, np.pi / 6, np.pi / 2, np.pi])
    images = np.column_stack([np.cos(angles), np.sin(angles)]) * np.array([[1], [5], [0.2], [3]])  # not unit length
    positive, negative = np.array([[2.0, 0.0]]), np.array([[0.0, 7.0]])
    expected = [1 - 0, math.sqrt(3) / 2 - 0.5, 0 - 1, -1 - 0]
    np.testing.assert_allclose(association_scores(images, positive, negative)[:, 0], expected, atol=1e-12)
    assert association_scores(images, positive, negative).dtype == np.float64


def test_spearman_similarity_on_constructed_columns():
    human = np.array([[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4], [5, 5, 5]], dtype=float)
    model = np.array([[10, 5, 2], [20, 4, 1], [30, 3, 4], [40, 2, 3], [50, 1, 5]], dtype=float)
    rows = model_human_similarity(model, human, ["same", "reversed", "swapped"])
    # Ranks of "swapped" differ from 1..5 by d = (1,-1,1,-1,0): ρ = 1 − 6·4/(5·24) = 0.8.
    assert [round(r["rho"], 12) for r in rows] == [1.0, -1.0, 0.8]
    t = 0.8 * math.sqrt(3 / (1 - 0.8 ** 2))
    assert rows[2]["p_value"] == pytest.approx(2 * student_t.sf(t, 3), rel=1e-9)
    assert [r["significant"] for r in rows] == [True, False, False]  # p(0.8, n=5) ≈ 0.10


def test_family_irr_correlation_pools_models_of_a_family():
    irr = {"a": 0.9, "b": 0.7, "c": 0.5, "d": 0.3}
    similarity = {"m1": {"a": 0.5, "b": 0.3, "c": 0.2, "d": 0.0},  # family x: mean follows IRR exactly
                  "m2": {"a": 0.3, "b": 0.3, "c": 0.1, "d": 0.0},
                  "m3": {"a": 0.0, "b": 0.1, "c": 0.2, "d": 0.3}}  # family y: the reverse
    rows = {r["family"]: r for r in family_irr_correlation(similarity, {"m1": "x", "m2": "x", "m3": "y"}, irr)}
    assert rows["x"]["rho"] == pytest.approx(1.0) and rows["x"]["models"] == ["m1", "m2"]
    assert rows["y"]["rho"] == pytest.approx(-1.0) and rows["y"]["attributes"] == 4


def test_model_family_from_the_registry_entry():
    assert model_family("ViT-B-32/openai", False) == "openai"
    assert model_family("ViT-L-14/laion400m_e32", False) == "laion400m"
    assert model_family("EVA01-g-14/laion400m_s11b_b41k", False) == "laion400m"
    assert model_family("tiny CLIP ViT width 32 (random)", True) == "tiny"


def test_scale_regression_recovers_planted_coefficients_and_names_what_it_left_out():
    rng = np.random.default_rng(0)
    rows = []
    for data in (80, 400, 2320):
        for image_mparams in (88.0, 304.0):
            for irr in rng.uniform(0.2, 1.0, 12):
                similarity = 0.1 + 0.5 * irr + 0.2 * data / 2320 - 0.3 * image_mparams / 304.0
                rows.append({"similarity": similarity + rng.normal(0, 1e-6), "irr": irr, "data_millions": data,
                             "samples_seen_millions": 13_000, "image_mparams": image_mparams})
    fit = scale_regression(rows)
    coefficients = {name: c["coef"] for name, c in fit["coefficients"].items()}
    assert coefficients["irr"] == pytest.approx(0.5, abs=1e-4)
    assert coefficients["data_millions"] == pytest.approx(0.2, abs=1e-4)  # scaled by the column max 2320
    assert coefficients["image_mparams"] == pytest.approx(-0.3, abs=1e-4)
    assert coefficients["const"] == pytest.approx(0.1, abs=1e-4)
    assert fit["n"] == 72 and fit["df_resid"] == 72 - 4
    assert fit["dropped"] == {"samples_seen_millions": "the same for every model",
                              "text_mparams": "not known for every model"}


# ------------------------------------------------------------------ structure
def test_correlation_matrix_and_normalized_frobenius_by_hand():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    matrix = correlation_matrix(np.column_stack([x, 2 * x + 1, -x, np.ones(4)]))
    np.testing.assert_allclose(matrix[:3, :3], [[1, 1, -1], [1, 1, -1], [-1, -1, 1]], atol=1e-12)
    assert np.isnan(matrix[3]).all()  # a constant column has no correlation
    h = np.array([[1.0, 0.5], [0.5, 1.0]])
    m = np.array([[1.0, -0.5], [-0.5, 1.0]])
    assert normalized_frobenius(h, m) == pytest.approx(1.5 / 2.5)  # (1+1−.25−.25) / (√2.5·√2.5)
    assert normalized_frobenius(h, h) == pytest.approx(1.0)


def test_ward_clustering_separates_two_planted_blocks():
    rng = np.random.default_rng(1)
    factors = rng.normal(size=(200, 2))
    columns = [factors[:, 0] + 0.1 * rng.normal(size=200) for _ in range(3)]
    columns += [factors[:, 1] + 0.1 * rng.normal(size=200) for _ in range(3)]
    labels = ["a1", "a2", "a3", "b1", "b2", "b3"]
    ward = ward_clustering(correlation_matrix(np.column_stack(columns)), labels, clusters=2)
    clusters = ward["clusters"]
    assert len({clusters[n] for n in labels[:3]}) == 1 and len({clusters[n] for n in labels[3:]}) == 1
    assert clusters["a1"] != clusters["b1"]
    order = ward["leaf_order"]
    assert {order[0][0], order[2][0]} == {order[1][0]} and {order[3][0], order[5][0]} == {order[4][0]}
    assert len(ward["linkage"]) == 5


# ------------------------------------------------------------------ shipped tables
def test_prompt_pairs_and_irr_as_quoted():
    pairs = load_prompt_pairs()
    assert len(pairs) == 34 and ATTRIBUTES[:4] == ["trustworthy", "attractive", "dominant", "smart"]
    by_name = {p.attribute: p for p in pairs}
    assert by_name["trustworthy"].negative == "a photo of someone who is devious"
    assert by_name["islander"].positive == "a photo of someone who is a pacific islander"
    no_opposite = [p.attribute for p in pairs if p.negative == "a photo of someone"]
    assert no_opposite == ["long-haired", "dorky", "alert", "cute", "asian", "middle-eastern", "hispanic", "islander",
                           "native", "black", "white", "electable"]
    irr = load_human_irr()
    assert set(irr) == set(ATTRIBUTES)
    assert (irr["age"], irr["looks-like-you"], irr["godly"], irr["smug"]) == (0.98, 0.27, 0.49, 0.68)


# ------------------------------------------------------------------ ratings folders
@pytest.fixture()
def omi(tmp_path):
    truth = write_impressions_dataset(tmp_path / "omi", 12, seed=3)
    return tmp_path / "omi", truth


def _rewrite(folder, edit):
    path = folder / "attribute_means.csv"
    rows = list(csv.reader(path.read_text().splitlines()))
    edit(rows)
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def test_a_good_folder_loads_with_planted_relations(omi):
    folder, truth = omi
    data = load_ratings(folder, ATTRIBUTES)
    assert data.stimuli == [str(i) for i in range(1, 13)] and data.means.shape == (12, 34)
    assert not data.missing_images and not data.unrated_images
    column = {a: data.means[:, i] for i, a in enumerate(ATTRIBUTES)}
    assert np.corrcoef(column["happy"], column["age"])[0, 1] > 0.95  # both driven by brightness
    assert np.corrcoef(column["happy"], truth["luminance"])[0, 1] > 0.95
    assert np.corrcoef(column["skin-color"], truth["redness"])[0, 1] < -0.95


def test_missing_images_folder_is_an_error(omi):
    folder, _ = omi
    shutil.rmtree(folder / "images")
    with pytest.raises(RatingsDatasetError, match="no images/ folder"):
        load_ratings(folder, ATTRIBUTES)


def test_a_stimulus_without_image_is_recorded_and_becomes_a_row(omi):
    folder, _ = omi
    (folder / "images" / "5.jpg").unlink()
    data = load_ratings(folder, ATTRIBUTES)
    assert data.missing_images == ["5"] and "5" not in data.stimuli and len(data.stimuli) == 11
    with pytest.raises(RatingsDatasetError, match=r"1 rated stimuli without an image \(5\)"):
        load_ratings(folder, ATTRIBUTES, strict=True)

    class Named:
        name, fingerprint, random_weights = "m", "f", True

    scores = np.zeros((len(data.stimuli), 34))
    table = associations_table(Associations(ATTRIBUTES, data.stimuli, scores, {}, data.missing_images), Named())
    rows = {r["stimulus"]: r for r in table.to_pylist()}
    assert len(rows) == 12 and rows["5"]["status"] == "missing_image" and rows["5"]["happy"] is None


def test_an_image_without_rating_is_recorded(omi):
    folder, _ = omi
    shutil.copy(folder / "images" / "1.jpg", folder / "images" / "99.jpg")
    data = load_ratings(folder, ATTRIBUTES)
    assert data.unrated_images == ["99"] and len(data.stimuli) == 12
    assert data.problems_summary()["images_without_rating"] == 1


def test_extra_and_missing_columns_are_errors(omi):
    folder, _ = omi
    _rewrite(folder, lambda rows: [row.append("7") if i else row.append("shoe-size") for i, row in enumerate(rows)])
    with pytest.raises(RatingsDatasetError, match="not attributes of the prompt table: shoe-size"):
        load_ratings(folder, ATTRIBUTES)
    _rewrite(folder, lambda rows: [row.__delitem__(slice(-2, None)) for row in rows])  # drop shoe-size and outdoors
    with pytest.raises(RatingsDatasetError, match="missing attribute columns: outdoors"):
        load_ratings(folder, ATTRIBUTES)


def test_non_numeric_ratings_are_named(omi):
    folder, _ = omi
    happy = 1 + ATTRIBUTES.index("happy")

    def edit(rows):
        rows[3][happy] = "n/a"
        rows[7][1] = ""
    _rewrite(folder, edit)
    with pytest.raises(RatingsDatasetError, match=r"2 ratings that are not finite numbers: 3/happy='n/a', "
                                                  r"7/trustworthy=''"):
        load_ratings(folder, ATTRIBUTES)


def test_duplicate_stimuli_and_a_missing_table_are_errors(omi):
    folder, _ = omi
    _rewrite(folder, lambda rows: rows.append(list(rows[2])))
    with pytest.raises(RatingsDatasetError, match="stimuli listed more than once: 2"):
        load_ratings(folder, ATTRIBUTES)
    (folder / "attribute_means.csv").unlink()
    with pytest.raises(RatingsDatasetError, match="no attribute_means.csv"):
        load_ratings(folder, ATTRIBUTES)


def test_the_dataset_hash_covers_table_and_image_contents(omi):
    folder, _ = omi
    before = load_ratings(folder, ATTRIBUTES).sha256
    assert load_ratings(folder, ATTRIBUTES).sha256 == before
    (folder / "images" / "2.jpg").write_bytes((folder / "images" / "3.jpg").read_bytes())
    after_image = load_ratings(folder, ATTRIBUTES).sha256
    _rewrite(folder, lambda rows: rows[1].__setitem__(1, "50.0"))
    assert len({before, after_image, load_ratings(folder, ATTRIBUTES).sha256}) == 3
