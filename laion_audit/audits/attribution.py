"""Attribute samples (shard, key) to demographic groups from per-person gender and race labels.

Why this module exists (paper_methods §5): the paper reports crime-word co-occurrence and negative-sentiment
ratios *per group*, but never states how an image with several people of different groups is attributed.
We make that choice explicit and configurable instead of hiding it:

* ``rule="sample"``: a sample counts (weight 1) for every group that appears among its valid persons. A photo
  of a man and a woman therefore counts once for ``gender:male`` and once for ``gender:female``. This is the
  natural reading of "images containing a <group> person" and matches per-identity image lists.
* ``rule="person"``: a sample's weight for a group is the share of its valid persons (on that axis) that are in
  the group, so the man/woman photo counts 0.5 for each. Weights of the groups on one axis sum to at most 1 per
  sample, so crowded images do not dominate.

Only *valid* persons count: a non-null ``box_id`` (rows with a null box_id are the "sample has no valid
person" placeholders) and ``status == "ok"``. Labels in ``exclude`` (default ``("unclear",)``) produce no group,
but the person still counts in the ``person``-rule denominator: an unclear person is still a person in the
image, and dropping them from the denominator would silently give the remaining people more weight.

Intersections (``race:<r>&gender:<g>``) combine a person's *own* race and gender, via an inner join of the two
label frames on (shard, key, box_id); a person labelled on only one axis does not enter the intersection axis.

The baseline (:func:`baseline_samples`) is every sample with at least one valid person on either axis, each
with weight 1 — the reference population for "vs baseline" relative increases.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

RULES = ("sample", "person")
AXES = ("gender", "race", "intersection")
ATTRIBUTION_SCHEMA = {
    "shard": pl.String,
    "key": pl.String,
    "group": pl.String,
    "axis": pl.String,
    "weight": pl.Float64,
}
BASELINE_GROUP = "baseline"


def valid_persons(labels: pl.DataFrame) -> pl.DataFrame:
    """Rows of a per-person label table that denote a real, successfully labelled person.

    A null ``box_id`` marks a sample with no valid person (kept upstream so every key stays accounted for) and a
    non-"ok" status marks a failed labelling; neither may count as a person of any group.
    """
    return (
        labels.filter(pl.col("box_id").is_not_null() & (pl.col("status") == "ok") & pl.col("label").is_not_null())
        .select("shard", "key", "box_id", "label")
        .unique(subset=["shard", "key", "box_id"], keep="first", maintain_order=True)
    )


def _attribute_axis(persons: pl.DataFrame, axis: str, rule: str, excluded: pl.Expr) -> pl.DataFrame:
    """Group-level rows for one axis; ``persons`` has shard, key, box_id, group and an ``excluded`` flag."""
    per_sample = persons.group_by("shard", "key").agg(pl.len().alias("_n_persons"))
    counted = (
        persons.filter(~excluded)
        .group_by("shard", "key", "group")
        .agg(pl.len().alias("_n_group"))
        .join(per_sample, on=["shard", "key"], how="left")
    )
    if rule == "sample":
        weight = pl.lit(1.0)
    else:
        weight = pl.col("_n_group").cast(pl.Float64) / pl.col("_n_persons").cast(pl.Float64)
    return counted.select(
        pl.col("shard").cast(pl.String),
        pl.col("key").cast(pl.String),
        pl.col("group").cast(pl.String),
        pl.lit(axis).alias("axis"),
        weight.cast(pl.Float64).alias("weight"),
    )


def attribute_groups(
    gender: pl.DataFrame,
    race: pl.DataFrame,
    *,
    rule: str = "sample",
    exclude: Sequence[str] = ("unclear",),
) -> pl.DataFrame:
    """(shard, key) → group attribution with columns shard, key, group, axis, weight.

    ``gender``/``race`` are per-person label tables (shard, key, box_id, label, status). Groups are
    ``gender:<label>``, ``race:<label>`` and ``race:<r>&gender:<g>``. A person whose race *or* gender label is
    in ``exclude`` yields no intersection group but still counts in the intersection denominator.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    excluded_labels = list(exclude)
    g = valid_persons(gender)
    r = valid_persons(race)

    gender_persons = g.with_columns(
        ("gender:" + pl.col("label")).alias("group"), pl.col("label").is_in(excluded_labels).alias("_excluded")
    )
    race_persons = r.with_columns(
        ("race:" + pl.col("label")).alias("group"), pl.col("label").is_in(excluded_labels).alias("_excluded")
    )
    both = r.rename({"label": "race"}).join(g.rename({"label": "gender"}), on=["shard", "key", "box_id"], how="inner")
    inter_persons = both.with_columns(
        ("race:" + pl.col("race") + "&gender:" + pl.col("gender")).alias("group"),
        (pl.col("race").is_in(excluded_labels) | pl.col("gender").is_in(excluded_labels)).alias("_excluded"),
    )
    parts = [
        _attribute_axis(gender_persons, "gender", rule, pl.col("_excluded")),
        _attribute_axis(race_persons, "race", rule, pl.col("_excluded")),
        _attribute_axis(inter_persons, "intersection", rule, pl.col("_excluded")),
    ]
    out = pl.concat([p.cast(ATTRIBUTION_SCHEMA) for p in parts], how="vertical")
    return out.sort("axis", "group", "shard", "key")


def baseline_samples(gender: pl.DataFrame, race: pl.DataFrame | None = None) -> pl.DataFrame:
    """All samples with at least one valid person on either axis, weight 1 (columns shard, key, weight).

    This is the reference population for relative increases: it includes samples whose persons are all
    "unclear", which the group attribution (with the default exclusion) would otherwise drop.
    """
    frames = [valid_persons(gender)]
    if race is not None:
        frames.append(valid_persons(race))
    keys = pl.concat([f.select(pl.col("shard").cast(pl.String), pl.col("key").cast(pl.String)) for f in frames])
    return keys.unique(maintain_order=True).with_columns(pl.lit(1.0).alias("weight")).sort("shard", "key")
