"""The 0.3 similarity-threshold audit: shares and crossings on a constructed table counted by hand, the probe
report with embeddings whose cosines are known, and the per-shard similarity accounting for every sample."""

import math

import numpy as np
import polars as pl
import pytest
from PIL import Image

from laion_audit.impressions.threshold import (
    BIRHANE_CAPTIONS,
    Probe,
    astronaut_probe,
    load_probes,
    paired_cosine,
    run_probes,
    threshold_audit,
)


def _rows():
    # sample: (a's cosine, b's cosine); s5 has no caption (both models), s6 is exactly at the threshold for a.
    values = {"s1": (0.35, 0.25), "s2": (0.31, 0.33), "s3": (0.10, 0.40), "s4": (0.29, 0.05), "s6": (0.30, 0.2999)}
    rows = []
    for key, (a, b) in values.items():
        rows += [{"shard": "00000", "key": key, "model_role": "clip_a", "similarity": a, "status": "ok"},
                 {"shard": "00000", "key": key, "model_role": "clip_b", "similarity": b, "status": "ok"}]
    rows += [{"shard": "00000", "key": "s5", "model_role": m, "similarity": None, "status": "no_caption"}
             for m in ("clip_a", "clip_b")]
    # the same key in another shard is another sample
    rows += [{"shard": "00001", "key": "s1", "model_role": "clip_a", "similarity": 0.5, "status": "ok"},
             {"shard": "00001", "key": "s1", "model_role": "clip_b", "similarity": 0.5, "status": "ok"}]
    return pl.DataFrame(rows, schema={"shard": pl.String, "key": pl.String, "model_role": pl.String,
                                      "similarity": pl.Float64, "status": pl.String})


def test_shares_each_side_of_the_threshold_and_crossings_counted_by_hand():
    audit = threshold_audit(_rows(), 0.3)
    shares = {row["model"]: row for row in audit["shares"]}
    # clip_a keeps s1, s2, s6 (0.30 ≥ 0.3) and 00001/s1: 4 of 6 scored; clip_b keeps s2, s3, 00001/s1: 3 of 6.
    assert (shares["clip_a"]["samples"], shares["clip_a"]["scored"], shares["clip_a"]["kept"]) == (7, 6, 4)
    assert shares["clip_a"]["below"] == 2 and shares["clip_a"]["share_kept"] == pytest.approx(4 / 6)
    assert (shares["clip_b"]["kept"], shares["clip_b"]["share_below"]) == (3, pytest.approx(3 / 6))
    (pair,) = audit["crossings"]
    assert (pair["model_a"], pair["model_b"]) == ("clip_a", "clip_b")
    # both: s2, 00001/s1; a only: s1, s6; b only: s3; neither: s4
    assert (pair["both_kept"], pair["kept_by_a_only"], pair["kept_by_b_only"], pair["both_dropped"]) == (2, 2, 1, 1)
    assert {(r["model_role"], r["status"]): r["rows"] for r in audit["statuses"]}[("clip_a", "no_caption")] == 1
    assert threshold_audit(_rows(), 0.0)["shares"][1]["kept"] == 6


class _Vectors:
    """An embedder whose image and text vectors are fixed, so every cosine is known: cos(image, text i) = c_i."""

    name, fingerprint, random_weights = "fixed", "0" * 64, False

    def __init__(self, cosines):
        self.cosines = cosines

    def image_embeddings(self, images, *, batch_size=64, normalize=True):
        return np.array([[1.0, 0.0]] * len(images))

    def text_embeddings(self, texts, *, batch_size=256, normalize=True):
        return np.array([[self.cosines[t], math.sqrt(1 - self.cosines[t] ** 2)] for t in texts])


def test_probe_report_gives_both_cosines_and_what_the_filter_keeps():
    probe = Probe("p", Image.new("RGB", (8, 8)), "caption one", "caption two", "generated")
    rows = run_probes({"clip_x": _Vectors({"caption one": 0.2767, "caption two": 0.3082}),
                       "clip_y": _Vectors({"caption one": 0.30, "caption two": 0.12})}, [probe], 0.3)
    x, y = rows
    assert (x["similarity_a"], x["similarity_b"]) == (pytest.approx(0.2767), pytest.approx(0.3082))
    assert (x["kept_a"], x["kept_b"], x["higher"]) == (False, True, "b")
    assert (y["kept_a"], y["kept_b"], y["higher"]) == (True, False, "a")


def test_the_astronaut_probe_and_probes_from_a_file(tmp_path):
    probe = astronaut_probe()
    assert probe.image.size == (512, 512) and (probe.caption_a, probe.caption_b) == BIRHANE_CAPTIONS
    assert probe.caption_b == ("This is a photograph of a smiling housewife in an orange jumpsuit with the American "
                               "flag")
    Image.new("RGB", (10, 10), "red").save(tmp_path / "red.png")
    (tmp_path / "probes.json").write_text('[{"name": "red", "image": "red.png", "caption_a": "a red square", '
                                          '"caption_b": "a blue square"}]')
    (loaded,) = load_probes(tmp_path / "probes.json")
    assert loaded.name == "red" and loaded.image.getpixel((0, 0)) == (255, 0, 0)
    (tmp_path / "bad.json").write_text('[{"name": "x", "image": "red.png", "caption_a": "a"}]')
    with pytest.raises(ValueError, match="lacks caption_b"):
        load_probes(tmp_path / "bad.json")


def test_paired_cosine():
    np.testing.assert_allclose(paired_cosine(np.array([[3.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 1.0], [2.0, 2.0]])),
                               [1 / math.sqrt(2), 1.0])


def test_a_model_that_scored_nothing_has_no_share():
    frame = pl.DataFrame({"shard": ["00000"], "key": ["k"], "model_role": ["clip_a"], "similarity": [None],
                          "status": ["no_caption"]}, schema={"shard": pl.String, "key": pl.String,
                                                             "model_role": pl.String, "similarity": pl.Float64,
                                                             "status": pl.String})
    (row,) = threshold_audit(frame)["shares"]
    assert (row["samples"], row["scored"], row["kept"], row["share_kept"], row["share_below"]) == (1, 0, 0, None, None)
    assert threshold_audit(frame)["crossings"] == []
