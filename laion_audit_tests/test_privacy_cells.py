"""No demographic cell smaller than k leaves restricted storage: suppressed confusion matrices, per-word and
negative-sentiment hits, and a trained classifier whose public JSON holds no split list, no class count and
no cell < k while the owner-only training record keeps them. Every expectation below is worked out by hand
in the comments next to it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from laion_audit.annotation.classifier_training import published_metrics
from laion_audit.annotation.classifiers import (
    ConsensusExamples,
    current_checkpoint,
    import_checkpoint,
    restrict_checkpoint,
    split_training_record,
)
from laion_audit.models.image_classifier import HEAD_FILE, META_FILE, RECORD_FILE
from laion_audit.stats.group_statistics import (
    K_MIN,
    complementary_suppression,
    per_word_breakdown,
    suppress_matrix,
    suppress_small_hits,
)

N = None


# --------------------------------------------------------------------------------------------- matrices
def test_k_defaults_to_ten():
    assert K_MIN == 10


def test_matrix_cells_below_k_and_a_second_cell_per_line_are_hidden():
    # Primary: 3 at (0,1) and 2 at (1,0). Pass 1 over rows then columns: row 0 has one hidden cell -> hide its
    # smaller visible cell 12 (0,2); row 1 -> 11 (1,2); column 0 (40, 2*, 14) -> 14 (2,0); column 1 (3*, 55, 13)
    # -> 13 (2,1); column 2 already has two. Pass 2: every row and column has two hidden cells. The diagonal
    # stays.
    matrix = [[40, 3, 12], [2, 55, 11], [14, 13, 60]]
    assert suppress_matrix(matrix) == [[40, N, N], [N, 55, N], [N, N, 60]]
    assert matrix == [[40, 3, 12], [2, 55, 11], [14, 13, 60]]  # the input is not modified


def test_one_small_cell_in_a_two_by_two_hides_everything():
    # 3 hidden; its row leaves 50, its column 40; then the first column has only 50 hidden -> 12 too.
    assert suppress_matrix([[50, 3], [12, 40]]) == [[N, N], [N, N]]


def test_zeros_are_hidden_in_a_matrix_and_protect_small_cells_beside_them():
    # Every cell < 10 goes, zeros included; each row and column then holds >= 2 hidden cells, so 12 (row 1) and
    # the diagonal stay. A hidden 0 is indistinguishable from a hidden 1..9.
    matrix = [[500, 0, 0, 3], [0, 400, 12, 0], [1, 0, 300, 0], [0, 0, 0, 200]]
    assert suppress_matrix(matrix) == [[500, N, N, N], [N, 400, 12, N], [N, N, 300, N], [N, N, N, 200]]
    # With zeros published, a zero is only a last-resort complement: row 0 of [[0, 3], [12, 40]] has 3 hidden
    # and only the 0 left; column 1 then hides 40, column 0 hides 12.
    assert suppress_matrix([[0, 3], [12, 40]], suppress_zeros=False) == [[N, N], [N, N]]
    assert suppress_matrix([[10, 20], [30, 40]]) == [[10, 20], [30, 40]]
    # k=25: 10 and 20 by rule (row 0 has two); columns 0 and 1 then each hide the cell below (30, 40).
    assert suppress_matrix([[10, 20, 50], [30, 40, 60]], k_min=25) == [[N, N, 50], [N, N, 60]]


def test_complementary_suppression_prefers_a_non_zero_cell():
    # Line (a, b, c) has a hidden; visible b=0 and c=7: the non-zero 7 is chosen even though 0 is smaller.
    assert complementary_suppression({"a": 3, "b": 0, "c": 7}, {"a"}, [["a", "b", "c"]]) == {"a", "c"}
    # Two hidden cells already: nothing to add; a None value counts as hidden.
    assert complementary_suppression({"a": 3, "b": None, "c": 7}, {"a"}, [["a", "b", "c"]]) == {"a", "b"}


# --------------------------------------------------------------------------------------------- classifier metrics
def _metrics(matrix, names):
    n = sum(map(sum, matrix))
    support = [sum(row) for row in matrix]
    return {
        "n": n, "accuracy": sum(matrix[i][i] for i in range(len(matrix))) / n, "kappa": 0.5,
        "mean_uncertainty": 0.2, "auroc_mispredicted": 0.7, "class_names": names, "confusion_matrix": matrix,
        "per_class_accuracy": {name: (matrix[i][i] / support[i] if support[i] else None)
                               for i, name in enumerate(names)},
    }


def test_published_metrics_keep_per_class_accuracy_only_for_classes_of_k_or_more():
    # Supports 43, 57, 8: class c (8 < 10) loses its accuracy; every cell < 10 goes (zeros included), which
    # leaves two hidden cells per line already, so only 40 and 55 remain.
    full = _metrics([[40, 3, 0], [2, 55, 0], [1, 2, 5]], ["a", "b", "c"])
    out = published_metrics(full, n_examples=200)
    assert out["confusion_matrix"] == [[40, N, N], [N, 55, N], [N, N, N]]
    assert out["per_class_accuracy"] == {"a": pytest.approx(40 / 43), "b": pytest.approx(55 / 57), "c": None}
    assert out["accuracy"] == pytest.approx(100 / 108) and out["kappa"] == 0.5 and out["n"] == 108
    assert out["suppressed_below"] == 10
    # Fewer than k training examples: no overall figure either.
    few = published_metrics(full, n_examples=9)
    assert few["accuracy"] is None and few["kappa"] is None and few["auroc_mispredicted"] is None
    # Without n_examples the split's own n decides (108 here).
    assert published_metrics(full)["accuracy"] == pytest.approx(100 / 108)


def _old_style_meta(n_examples=120):
    refs = {"train": [["00000", "00000-1", 0]], "val": [["00000", "00000-2", 1]], "test": [["00001", "00001-3", 0]]}
    return {
        "backbone": "local-dir:/x", "classes": ["a", "b", "c"], "backbone_fingerprint": "f" * 64,
        "trained_on": {"n_examples": n_examples, "class_counts": {"a": 60, "b": 57, "c": 3}, "splits": refs,
                       "votes_versions": {"00000": "v0"}},
        "best_epoch": 1,
        "val_metrics": _metrics([[40, 3, 0], [2, 55, 0], [1, 2, 5]], ["a", "b", "c"]),
        "test_metrics": None,
        "history": [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.9, "val_accuracy": 0.9, "val_kappa": 0.8,
                     "val_mean_uncertainty": 0.1, "val_auroc_mispredicted": 0.6}],
    }


def _walk(value):
    """Every (key, value) pair and every leaf value in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield None, item
            yield from _walk(item)


def _assert_publishable(meta, k=10):
    keys = {key for key, _ in _walk(meta) if key is not None}
    assert not keys & {"splits", "class_counts", "split_class_counts", "per_class_support"}
    for metrics in (meta.get("val_metrics"), meta.get("test_metrics")):
        if metrics:
            assert metrics["suppressed_below"] == k
            assert all(cell is None or cell >= k for row in metrics["confusion_matrix"] for cell in row)


def test_split_training_record_moves_people_and_small_cells_out_and_is_idempotent():
    meta = _old_style_meta()
    public, record = split_training_record(meta)
    _assert_publishable(public)
    assert public["backbone"] == "local-dir:/x" and public["classes"] == ["a", "b", "c"]
    assert public["backbone_fingerprint"] == "f" * 64
    assert public["trained_on"] == {"n_examples": 120, "votes_versions": {"00000": "v0"}}
    assert public["privacy"]["training_record"] == RECORD_FILE
    assert public["history"] == meta["history"]  # 120 >= k: per-epoch overall figures may stay
    assert record["trained_on"] == {"class_counts": {"a": 60, "b": 57, "c": 3}, "splits": meta["trained_on"]["splits"]}
    assert record["val_metrics"]["confusion_matrix"] == [[40, 3, 0], [2, 55, 0], [1, 2, 5]]
    assert record["val_metrics"]["per_class_support"] == {"a": 43, "b": 57, "c": 8}
    again, nothing = split_training_record(public)
    assert again == public and nothing == {}


def test_history_of_a_classifier_trained_on_fewer_than_k_examples_keeps_no_validation_figure():
    public, record = split_training_record(_old_style_meta(n_examples=8))
    epoch = public["history"][0]
    assert epoch["val_accuracy"] is None and epoch["val_kappa"] is None and epoch["train_loss"] == 1.0
    assert record["history"][0]["val_accuracy"] == 0.9
    assert public["val_metrics"]["accuracy"] is None


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_an_old_checkpoint_is_restricted_in_place_and_an_imported_one_on_import(tmp_path):
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    (old / META_FILE).write_text(json.dumps(_old_style_meta()))
    (old / HEAD_FILE).write_bytes(b"weights")
    restrict_checkpoint(old)
    _assert_publishable(json.loads((old / META_FILE).read_text()))
    assert _mode(old / RECORD_FILE) == 0o600 and _mode(old) == 0o700
    assert json.loads((old / RECORD_FILE).read_text())["trained_on"]["class_counts"]["c"] == 3

    source = tmp_path / "elsewhere"
    source.mkdir()
    (source / META_FILE).write_text(json.dumps(_old_style_meta()))
    (source / HEAD_FILE).write_bytes(b"other weights")
    published = import_checkpoint(source, tmp_path / "trained", ("a", "b", "c"))
    folder = Path(published["folder"])
    _assert_publishable(published["meta"])
    _assert_publishable(json.loads((folder / META_FILE).read_text()))
    assert _mode(folder / RECORD_FILE) == 0o600 and _mode(folder) == 0o700
    assert json.loads((folder / RECORD_FILE).read_text())["trained_on"]["splits"]["val"] == [["00000", "00000-2", 1]]


# --------------------------------------------------------------------------------------------- group tables
def _frame(rows, columns):
    return pl.DataFrame(rows, schema=columns, orient="row")


PER_WORD = ["group", "axis", "word", "n_samples", "hits", "rate", "delta_pct", "suppressed"]


def _cells(df, column):
    return {(r["group"], r.get("word")): r[column] for r in df.iter_rows(named=True)}


def test_per_word_hits_below_k_and_their_complements_are_hidden():
    # race:a has w2=5 and w3=3 (both primary: two hidden in its row already). Column w2 (groups of the race axis)
    # then has one hidden cell -> the smaller of b 20 / c 12 -> c; column w3 -> c 11 (b has 15). Row c now has
    # two hidden. b stays whole; the baseline rows are not demographic cells and stay.
    hits = {"race:a": (40, 5, 3), "race:b": (30, 20, 15), "race:c": (25, 12, 11), "baseline": (95, 37, 29)}
    rows = [(group, "baseline" if group == "baseline" else "race", word, 100, float(h), h / 100, 1.0, False)
            for group, values in hits.items() for word, h in zip(("w1", "w2", "w3"), values)]
    out = suppress_small_hits(_frame(rows, PER_WORD), 10)
    hidden = {cell for cell, flag in _cells(out, "hits_suppressed").items() if flag}
    assert hidden == {("race:a", "w2"), ("race:a", "w3"), ("race:c", "w2"), ("race:c", "w3")}
    values = _cells(out, "hits")
    assert values[("race:a", "w1")] == 40 and values[("race:c", "w1")] == 25 and values[("race:b", "w3")] == 15
    assert values[("baseline", "w3")] == 29
    for cell in hidden:
        assert values[cell] is None and _cells(out, "rate")[cell] is None and _cells(out, "delta_pct")[cell] is None
    assert out.columns == PER_WORD + ["hits_suppressed"] and out.height == len(rows)
    assert not out["suppressed"].any()  # the group-size flag keeps its meaning


def test_a_group_below_k_counts_as_hidden_and_still_needs_a_second_cell():
    # Same as above plus race:d (group below k: all hits null). Columns w2 and w3 now hold a* and d -> two
    # hidden each, so c's w2/w3 are not needed there. But column w1 (a 40, b 30, c 25, d null) has d alone:
    # baseline minus a, b and c would give d's count, so the smallest, c 25, is hidden; row c (25*, 12, 11) then
    # hides 11. Only the cells this function hid are flagged (d's are `suppressed`).
    hits = {"race:a": (40, 5, 3), "race:b": (30, 20, 15), "race:c": (25, 12, 11)}
    rows = [(g, "race", w, 100, float(h), h / 100, 1.0, False) for g, vs in hits.items()
            for w, h in zip(("w1", "w2", "w3"), vs)]
    rows += [("race:d", "race", w, N, N, N, N, True) for w in ("w1", "w2", "w3")]
    out = suppress_small_hits(_frame(rows, PER_WORD), 10)
    hidden = {cell for cell, flag in _cells(out, "hits_suppressed").items() if flag}
    assert hidden == {("race:a", "w2"), ("race:a", "w3"), ("race:c", "w1"), ("race:c", "w3")}
    assert _cells(out, "hits")[("race:c", "w2")] == 12 and _cells(out, "hits")[("race:d", "w1")] is None


def test_zero_hits_are_published_and_only_used_as_a_last_resort():
    # race:a: w1=50, w2=0, w3=4 -> w3 primary. Column w3 (a*, b 70) hides b's 70; row a (50, 0, 4*) has the
    # non-zero 50 hidden rather than the 0 (a zero beside a small cell would leave the small value as the row's
    # residue); row b (60, 0, 70*) likewise hides 60. Columns w1 (a*, b*) and w2 (0, 0) are then fine: the
    # zeros stay published.
    hits = {"race:a": (50, 0, 4), "race:b": (60, 0, 70)}
    rows = [(g, "race", w, 100, float(h), h / 100, 1.0, False) for g, vs in hits.items()
            for w, h in zip(("w1", "w2", "w3"), vs)]
    out = suppress_small_hits(_frame(rows, PER_WORD), 10)
    values = _cells(out, "hits")
    assert values == {("race:a", "w1"): N, ("race:a", "w2"): 0.0, ("race:a", "w3"): N,
                      ("race:b", "w1"): N, ("race:b", "w2"): 0.0, ("race:b", "w3"): N}


SENTIMENT = ["group", "axis", "n_samples", "negative_hits", "negative_ratio", "negative_ci_low",
             "negative_ci_high", "negative_rr", "compound_mean", "suppressed"]
NEGATIVE_DERIVED = ("negative_ratio", "negative_ci_low", "negative_ci_high", "negative_rr")


def test_negative_hits_in_a_two_by_two_intersection_hide_the_inside_and_keep_the_margins():
    # race a/b x gender f/m with consistent margins: a = 27 + 3, b = 10 + 30, f = 27 + 10, m = 3 + 30.
    # a&m = 3 is primary. The intersection axis line (27, 3*, 10, 30) hides 10 (b&f); margin race:a (30, 27, 3*)
    # hides 27 (a&f); margin gender:m (33, 3*, 30) hides 30 (b&m). Then every margin line holds two hidden
    # cells: all four inner cells hidden, the four margins published -- the textbook 2x2 answer.
    counts = {"gender:f": 37, "gender:m": 33, "race:a": 30, "race:b": 40, "race:a&gender:f": 27,
              "race:a&gender:m": 3, "race:b&gender:f": 10, "race:b&gender:m": 30, "baseline": 70}

    def axis(group):
        return "baseline" if group == "baseline" else "intersection" if "&" in group else group.split(":")[0]

    rows = [(g, axis(g), 100, float(h), h / 100, 0.1, 0.5, 1.2, -0.1, False) for g, h in counts.items()]
    out = suppress_small_hits(_frame(rows, SENTIMENT), 10, hits_column="negative_hits",
                              derived_columns=NEGATIVE_DERIVED, flag_column="negative_hits_suppressed", across=None)
    by_group = {r["group"]: r for r in out.iter_rows(named=True)}
    inner = {g for g in counts if "&" in g}
    assert {g for g, r in by_group.items() if r["negative_hits_suppressed"]} == inner
    for group in inner:
        row = by_group[group]
        assert all(row[c] is None for c in ("negative_hits", *NEGATIVE_DERIVED))
        assert row["compound_mean"] == -0.1 and row["n_samples"] == 100  # not derived from the count
    assert {g: by_group[g]["negative_hits"] for g in counts if g not in inner} == {
        "gender:f": 37, "gender:m": 33, "race:a": 30, "race:b": 40, "baseline": 70}


def test_per_word_breakdown_then_suppression_on_the_crafted_fixture():
    """The fixture of test_group_statistics: A (20 samples) has murder 10, theft 1; B (9) is group-suppressed;
    C (10) has zeros. theft 1 is primary (column theft: A* and B null -> enough). Column murder (A 10, B null,
    C 0) has B alone hidden -> the non-zero 10 of A goes; row A is then fully hidden. C's zeros stay."""
    keys = [f"k{i:03d}" for i in range(100)]
    groups = [("race:A", list(range(0, 10)) + list(range(20, 30))), ("race:B", range(30, 39)),
              ("race:C", range(40, 50))]
    attribution = pl.DataFrame([("s0", keys[i], g, "race", 1.0) for g, idx in groups for i in idx],
                               schema=["shard", "key", "group", "axis", "weight"], orient="row")
    baseline = pl.DataFrame({"shard": ["s0"] * 100, "key": keys, "weight": [1.0] * 100})
    terms = [(["murder"] if i < 10 else ["theft"]) if i < 20 else [] for i in range(100)]
    terms[0] = ["murder", "theft"]
    scores = pl.DataFrame({"shard": ["s0"] * 100, "key": keys, "crime_terms": terms, "status": ["ok"] * 100})
    out = suppress_small_hits(per_word_breakdown(attribution, scores, k_min=10, baseline=baseline), 10)
    values, flags = _cells(out, "hits"), _cells(out, "hits_suppressed")
    assert values[("race:A", "theft")] is None and values[("race:A", "murder")] is None
    assert flags[("race:A", "theft")] and flags[("race:A", "murder")]
    assert not flags[("race:B", "theft")]  # hidden by its group size, flagged as `suppressed`
    assert values[("race:C", "murder")] == 0.0 and values[("race:C", "theft")] == 0.0
    assert values[("baseline", "theft")] == 11.0


def test_published_group_tables_carry_the_flags():
    """The published crime and sentiment tables apply the rule (computed from the rows' sums, no store needed).

    60 samples, one person each: k000..k029 female, k030..k059 male; race "unclear" for all (excluded, so the
    gender axis is the only one). Words: female thief 12 (k000-k011), fraud 3 (k012-k014), burglar 15
    (k015-k029); male thief 20 (k030-k049), burglar 10 (k050-k059), fraud 0. Negative: female 4, male 25.
    """
    from laion_audit.audits import group_tables
    from laion_audit.stats.group_sums import group_sums

    def label_rows(label_of):
        return pl.DataFrame([("s", f"k{i:03d}", 0, label_of(i), "ok") for i in range(60)],
                            schema=["shard", "key", "box_id", "label", "status"], orient="row")

    gender = label_rows(lambda i: "female" if i < 30 else "male")
    race = label_rows(lambda i: "unclear")
    terms = [["thief"] if i < 12 or 30 <= i < 50 else ["fraud"] if i < 15 else ["burglar"] for i in range(60)]
    negative = [i < 4 or 30 <= i < 55 for i in range(60)]
    scores = pl.DataFrame({"shard": ["s"] * 60, "key": [f"k{i:03d}" for i in range(60)], "status": ["ok"] * 60,
                           "crime_match": [True] * 60, "crime_terms": terms, "negative": negative,
                           "vader_compound": [-0.3 - i % 5 / 10 if n else 0.2 + i % 7 / 10
                                              for i, n in enumerate(negative)]})
    sums = group_sums(gender, race, scores)
    crime_tables = group_tables.crime_tables(sums)
    words = {(r["group"], r["word"]): r for r in crime_tables["per_word"].to_dicts()}
    # Lines: per word (female, male) and per group (burglar, fraud, thief). Pass 1: word fraud (3*, 0) -> male 0;
    # row female (15, 3*, 12) -> 12; row male (10, 0*, 20) -> 10. Pass 2: word burglar (15, 10*) -> 15; word thief
    # (12*, 20) -> 20. Two groups on one axis: one small cell hides both rows. The baseline rows stay.
    for group in ("gender:female", "gender:male"):
        for word in ("burglar", "fraud", "thief"):
            row = words[(group, word)]
            assert row["hits"] is None and row["rate"] is None and row["delta_pct"] is None, (group, word)
            assert row["hits_suppressed"] and not row["suppressed"] and row["n_samples"] == 30
    assert {w: words[("baseline", w)]["hits"] for w in ("burglar", "fraud", "thief")} == {
        "burglar": 25.0, "fraud": 3.0, "thief": 32.0}
    assert not words[("baseline", "fraud")]["hits_suppressed"]
    rates = {r["group"]: r for r in crime_tables["rates"].to_dicts()}
    assert rates["gender:female"]["hits"] == 30.0  # the group's overall count is published as before

    sentiment = {r["group"]: r for r in group_tables.sentiment_tables(sums)["sentiment"].to_dicts()}
    # female 4 is primary; the gender axis line (4*, 25) hides male 25. The baseline (29) stays.
    female, male = sentiment["gender:female"], sentiment["gender:male"]
    assert female["negative_hits"] is None and female["negative_ratio"] is None
    assert female["negative_ci_low"] is None and female["negative_rr"] is None
    assert female["negative_hits_suppressed"] and male["negative_hits_suppressed"] and male["negative_hits"] is None
    assert female["compound_mean"] is not None and female["n_samples"] == 30  # not derived from the count
    assert sentiment["baseline"]["negative_hits"] == 29.0 and not sentiment["baseline"]["negative_hits_suppressed"]


# --------------------------------------------------------------------------------------------- trained classifier
@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    from laion_audit.models.tiny import build_tiny_open_clip

    folder = tmp_path_factory.mktemp("backbone") / "open_clip"
    build_tiny_open_clip(folder, seed=0)
    return f"local-dir:{folder}"


def _crops(per_class: int, classes: int, seed: int = 0) -> ConsensusExamples:
    rng = np.random.default_rng(seed)
    images, labels, refs = [], [], []
    for label in range(classes):
        for i in range(per_class):
            pixels = rng.uniform(0, 120, size=(40, 32, 3))
            pixels[..., label] += 100
            images.append(Image.fromarray(pixels.astype(np.uint8), "RGB"))
            labels.append(label)
            refs.append(("00000", f"00000-{label}{i:03d}", i % 3))
    return ConsensusExamples(images, labels, refs, votes_versions={"00000": "votes-v1"})


def test_a_trained_classifier_publishes_no_split_list_no_class_count_and_no_small_cell(tmp_path, tiny_backbone):
    from laion_audit.annotation.classifier_training import TrainingRecipe
    from laion_audit.annotation.classifiers import train_from_consensus
    from laion_audit.models.image_classifier import TrainedClassifier

    classes = ("male", "female", "unclear")
    examples = _crops(per_class=8, classes=2)  # 16 examples: 8 + 8 + 0
    recipe = TrainingRecipe(batch_size=8, epochs=1, lr=1e-3, min_lr=1e-4, seed=0)
    out_root = tmp_path / "gender_classifier"
    published = train_from_consensus(examples, classes, tiny_backbone, recipe, out_root, backbone_fingerprint="b" * 64)
    folder = Path(published["folder"])
    assert current_checkpoint(out_root)[0] == folder

    text = (folder / META_FILE).read_text()
    meta = json.loads(text)
    assert meta == published["meta"]
    _assert_publishable(meta)
    assert not any(key in text for _, key, _ in examples.refs)  # no example is named
    assert meta["backbone"] == tiny_backbone and meta["classes"] == list(classes)
    assert meta["backbone_fingerprint"] == "b" * 64
    assert meta["trained_on"] == {"n_examples": 16, "votes_versions": {"00000": "votes-v1"}}
    # Split: 15% of 8 rounds to 1 per class for val and test: val and test hold 2 crops each, so every cell and
    # every class support is below 10 -- nothing per class is published, the overall accuracy is (16 >= 10).
    val = meta["val_metrics"]
    assert val["n"] == 2 and val["accuracy"] is not None
    assert val["confusion_matrix"] == [[N] * 3] * 3
    assert val["per_class_accuracy"] == {"male": None, "female": None, "unclear": None}

    record_path = folder / RECORD_FILE
    assert _mode(record_path) == 0o600 and _mode(folder) == 0o700
    record = json.loads(record_path.read_text())
    assert record["trained_on"]["class_counts"] == {"male": 8, "female": 8, "unclear": 0}
    assert record["trained_on"]["split_class_counts"]["val"] == {"male": 1, "female": 1, "unclear": 0}
    listed = [tuple(ref) for split in ("train", "val", "test") for ref in record["trained_on"]["splits"][split]]
    assert sorted(listed) == sorted(examples.refs)
    assert sum(map(sum, record["val_metrics"]["confusion_matrix"])) == 2
    assert record["val_metrics"]["per_class_support"] == {"male": 1, "female": 1, "unclear": 0}

    # Loading still works from classifier.json alone.
    loaded = TrainedClassifier(folder, name="gender_classifier", fingerprint=published["fingerprint"],
                               random_weights=True, device="cpu")
    assert loaded.classes == classes
    assert loaded.predict_proba(examples.images[:2]).shape == (2, 3)


def test_a_count_whose_complement_is_small_is_hidden_too():
    import polars as pl

    from laion_audit.stats.group_statistics import suppress_small_hits

    # gender:a has 12 samples, 10 with a hit: publishing 10 reveals the 2 without one.
    table = pl.DataFrame({"group": ["baseline", "gender:a", "gender:b", "gender:c"],
                          "axis": ["baseline", "gender", "gender", "gender"],
                          "n_samples": [80, 12, 30, 38], "hits": [45.0, 10.0, 15.0, 20.0],
                          "rate": [45 / 80, 10 / 12, 0.5, 20 / 38]})
    out = {r["group"]: r for r in suppress_small_hits(table, 10, across=None).iter_rows(named=True)}
    assert out["gender:a"]["hits"] is None and out["gender:a"]["rate"] is None
    # One hidden cell on the gender line could be recovered from the baseline: the next smallest goes too.
    assert out["gender:b"]["hits"] is None and out["gender:c"]["hits"] == 20.0
    assert out["baseline"]["hits"] == 45.0


def test_a_small_hate_speech_count_is_not_published_as_a_share(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from laion_audit.audits.group_tables import sentiment_by_group
    from laion_audit.shards.store import ShardStore

    from .test_version_sets import count_groups, write_marker

    # 30 men of whom 3 have a hateful alt-text (a cell of 3, shown as a 10% share), 40 women of whom 20 do.
    genders = ["male"] * 30 + ["female"] * 40
    hateful = [i < 3 for i in range(30)] + [i < 20 for i in range(40)]
    keys = [f"{i:09d}" for i in range(len(genders))]
    for asset, labels in (("gender_labels", genders), ("race_labels", ["white"] * len(keys))):
        write_marker(tmp_path, asset, "00000", "1111111111111111", restricted=True)
        pq.write_table(pa.table({"shard": ["00000"] * len(keys), "key": keys, "box_id": [0] * len(keys),
                                 "label": labels, "status": ["ok"] * len(keys)}),
                       tmp_path / "restricted" / asset / "00000.parquet")
    write_marker(tmp_path, "alt_text_scores", "00000", "2222222222222222")
    pq.write_table(pa.table({"shard": ["00000"] * len(keys), "key": keys, "status": ["ok"] * len(keys),
                             "crime_match": [False] * len(keys), "crime_terms": [[] for _ in keys],
                             "negative": [False] * len(keys), "vader_compound": [0.5] * len(keys),
                             "hate_prob": [0.9 if h else 0.1 for h in hateful]}),
                   tmp_path / "alt_text_scores" / "00000.parquet")
    count_groups(tmp_path, ["00000"])
    table = sentiment_by_group(ShardStore(str(tmp_path)))["sentiment"]
    shares = {r["group"]: r["hate_share"] for r in table.iter_rows(named=True)}
    assert shares["gender:male"] is None
    # With two groups on the axis, the other one would give the hidden one away through the baseline.
    assert shares["gender:female"] is None
    assert shares["baseline"] == 23 / 70
