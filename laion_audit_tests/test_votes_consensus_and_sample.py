"""Consensus rules, the ensemble's label-free figures and the votes sample, on crafted inputs worked by hand."""

import math

import pyarrow as pa
import pytest

from laion_audit.annotation.crops import PersonBox
from laion_audit.annotation.schemas import VOTES_SCHEMA
from laion_audit.annotation.vote_sample import is_sampled, sample_boxes
from laion_audit.annotation.vote_statistics import VoteTally, pooled
from laion_audit.models.prompts import consensus

# (members' parsed answers, expected consensus under unanimous_all / unanimous_parseable / majority)
CRAFTED = [
    (["male", "male", "male"], "male", "male", "male"),
    (["male", None, "male"], None, "male", "male"),  # one unparseable answer ("A.") blocks unanimous_all
    ([None, None, "female"], None, "female", None),  # a lone parseable answer is not the ensemble's view
    (["male", "female", "male"], None, None, "male"),
    (["male", "female", "unclear"], None, None, None),
    ([None, None, None], None, None, None),
    (["unclear", "unclear", "unclear"], "unclear", "unclear", "unclear"),
]


@pytest.mark.parametrize(("labels", "unanimous_all", "unanimous_parseable", "majority"), CRAFTED)
def test_consensus_rules_on_crafted_answers(labels, unanimous_all, unanimous_parseable, majority):
    assert consensus(labels) == unanimous_all  # the default rule
    assert consensus(labels, "unanimous_all") == unanimous_all
    assert consensus(labels, "unanimous_parseable") == unanimous_parseable
    assert consensus(labels, "majority") == majority


def _votes(crops: list[list[str | None]], members=("m1", "m2", "m3"), rule="unanimous_all") -> pa.Table:
    rows = []
    for i, parsed in enumerate(crops):
        agreed = consensus(parsed, rule)
        for member, label in zip(members, parsed, strict=True):
            rows.append({"shard": "00000", "key": f"k{i}", "box_id": 0, "member": member, "member_fingerprint": "f",
                         "options": "[]", "raw_answer": label or "The answer is", "parsed": label,
                         "consensus": agreed, "consensus_rule": rule, "status": "ok", "error": None,
                         "random_weights": True})
    return pa.Table.from_pylist(rows, schema=VOTES_SCHEMA)


def test_ensemble_figures_on_a_crafted_set():
    # Five crops; by hand: m1 parses 4, m2 parses 4, m3 parses 3.
    # m1&m2 both parsed and equal on crops 0, 1 -> 2; m1&m3 on 0, 3 -> 2; m2&m3 on 0 -> 1.
    # unanimous_all holds on crop 0 only -> yield 1/5.
    crops = [["male", "male", "male"],
             ["female", "female", None],
             ["male", "female", "unclear"],
             ["unclear", None, "unclear"],
             [None, "male", None]]
    rates = VoteTally.of_votes(_votes(crops), ["m1", "m2", "m3"]).rates()
    assert rates["sampled_crops"] == 5
    assert rates["consensus_yield"] == 0.2
    assert rates["parse_rate"] == {"m1": 0.8, "m2": 0.8, "m3": 0.6}
    assert rates["agreement_matrix"] == {"members": ["m1", "m2", "m3"],
                                         "matrix": [[0.8, 0.4, 0.4], [0.4, 0.8, 0.2], [0.4, 0.2, 0.6]]}


def test_ensemble_figures_pool_counts_not_rates():
    # Shard A: 1 crop, all agree (yield 1). Shard B: 3 crops, none agree and m3 never parses (yield 0).
    # Pooled by hand: yield 1/4 (an average of the shard rates would say 1/2); m3 parses 1 of 4.
    a = VoteTally.of_votes(_votes([["male", "male", "male"]]), ["m1", "m2", "m3"])
    b = VoteTally.of_votes(_votes([["male", "female", None]] * 3), ["m1", "m2", "m3"])
    b = VoteTally.from_counts(b.counts())  # as read back from the shard marker
    rates = pooled([a, b]).rates()
    assert rates["sampled_crops"] == 4 and rates["consensus_yield"] == 0.25
    assert rates["parse_rate"] == {"m1": 1.0, "m2": 1.0, "m3": 0.25}
    assert rates["agreement_matrix"]["matrix"][0][1] == 0.25
    assert a.crops == 1  # pooling does not change its inputs


def test_ensemble_figures_refuse_mismatched_members():
    with pytest.raises(ValueError, match="distinct"):
        VoteTally(("m1", "m1", "m3"))
    with pytest.raises(ValueError, match="outside the ensemble"):
        VoteTally.of_votes(_votes([["male", "male", "male"]], members=("m1", "m2", "x")), ["m1", "m2", "m3"])
    with pytest.raises(ValueError, match="cannot pool"):
        VoteTally(("m1", "m2", "m3")).add(VoteTally(("m1", "m2", "m4")))


def test_no_crops_give_no_rates():
    rates = VoteTally(("m1", "m2", "m3")).rates()
    assert rates["sampled_crops"] == 0 and rates["consensus_yield"] is None
    assert set(rates["parse_rate"].values()) == {None}


def _persons(shard: str, n_images: int, boxes_per_image: int = 3) -> list[tuple[str, str, int]]:
    return [(shard, f"{shard}{i:04d}", b) for i in range(n_images) for b in range(boxes_per_image)]


def test_same_seed_same_selection_and_another_seed_another():
    persons = _persons("00000", 400)
    first = [p for p in persons if is_sampled(7, 0.3, *p)]
    again = [p for p in persons if is_sampled(7, 0.3, *p)]
    other = [p for p in persons if is_sampled(8, 0.3, *p)]
    assert first == again and first != other


def test_a_persons_inclusion_does_not_depend_on_who_else_exists():
    small = [PersonBox(key, box_id, (0, 0, 40, 40)) for _, key, box_id in _persons("00000", 50)]
    # The same shard with many more persons added before, between and after the original ones.
    extra = [PersonBox(f"x{i}", 0, (0, 0, 40, 40)) for i in range(300)]
    large = extra[:100] + small[:25] + extra[100:200] + small[25:] + extra[200:]
    chosen_small = sample_boxes(small, rate=0.4, seed=3, shard="00000")
    chosen_large = sample_boxes(large, rate=0.4, seed=3, shard="00000")
    assert chosen_small and set(chosen_small) == set(chosen_large) & set(small)
    # Raising the rate only adds persons; the shard is part of a person's identity.
    assert set(chosen_small) <= set(sample_boxes(small, rate=0.6, seed=3, shard="00000"))
    assert set(sample_boxes(small, rate=0.4, seed=3, shard="00001")) != set(chosen_small)


@pytest.mark.parametrize("rate", [0.01, 0.2, 0.5])
def test_realised_rate_is_within_binomial_bounds(rate):
    persons = [p for shard in ("00000", "00001", "00002", "00003") for p in _persons(shard, 2500, 2)]
    n = len(persons)  # 20,000 persons
    hits = sum(is_sampled(0, rate, *p) for p in persons)
    # Five standard deviations of Binomial(n, rate): a fair sampler falls outside with probability < 1e-6.
    assert abs(hits - n * rate) <= 5 * math.sqrt(n * rate * (1 - rate))


def test_rate_one_samples_everyone_and_a_rate_outside_the_range_is_refused():
    persons = _persons("00000", 200)
    assert all(is_sampled(0, 1.0, *p) for p in persons)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="sample rate"):
            is_sampled(0, bad, *persons[0])


@pytest.mark.parametrize("rate", [0.0, 1.5])
def test_a_sample_rate_outside_the_unit_interval_fails_the_run_naming_it(tmp_path, rate):
    from dagster import AssetKey

    from .dagster_harness import dagster_test_instance, definitions, register

    defs = definitions(tmp_path, tmp_path / "store")
    with dagster_test_instance() as instance:
        register(instance, ["00000"])
        result = defs.resolve_job_def("person_detection_job").execute_in_process(
            partition_key="00000", instance=instance, raise_on_error=False,
            run_config={"ops": {"gender_votes": {"config": {"sample_rate": rate}}}},
            asset_selection=[AssetKey("gender_votes")])
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "gender_votes: sample_rate must be > 0 and <= 1" in failure.step_failure_data.user_failure_data.description
