"""Published group tables: crime-word co-occurrence and sentiment by perceived group (aggregates over shards)."""

from typing import Literal

from dagster import AssetExecutionContext, Config, DataVersion, Failure, MaterializeResult, MetadataValue, asset

from laion_audit.audits.report_inputs import manifest_hash, write_report
from laion_audit.defs.resources import ShardStoreResource
from laion_audit.audits.group_tables import NoAttributedSamplesError, chart, crime_cooccurrence, markdown_table
from laion_audit.audits.group_tables import sentiment_by_group as sentiment_by_group_tables

RATE_COLUMNS = ["group", "n_samples", "hits", "rate", "ci_low", "ci_high", "p_base", "delta_pct", "delta_ci_low",
                "delta_ci_high", "suppressed"]
SENTIMENT_COLUMNS = ["group", "n_samples", "negative_ratio", "negative_ci_low", "negative_ci_high",
                     "compound_mean", "compound_ci_low", "compound_ci_high", "suppressed"]


class GroupReportConfig(Config):
    attribution: Literal["sample", "person"] = "sample"
    k_min: int = 10
    exclude_unclear: bool = True


def _exclude(config: GroupReportConfig) -> tuple[str, ...]:
    return ("unclear",) if config.exclude_unclear else ()


@asset(
    name="crime_cooccurrence",
    deps=["gender_labels", "race_labels", "alt_text_scores"],
    code_version="crime_cooccurrence-1",
    group_name="reports",
    kinds={"json"},
    description="Rate of crime words in alt-texts of samples attributed to each perceived group (gender, race, "
    "intersections) vs all samples with a valid person: Δ = (p_group / p_baseline − 1)·100 with Wilson and Katz "
    "95% CIs, per-word breakdown, cells below k suppressed.",
)
def crime_cooccurrence_table(
    context: AssetExecutionContext, config: GroupReportConfig, shard_store: ShardStoreResource
) -> MaterializeResult:
    store = shard_store.store()
    try:
        result = crime_cooccurrence(store, rule=config.attribution, k_min=config.k_min, exclude=_exclude(config))
    except NoAttributedSamplesError as exc:
        raise Failure(description=str(exc)) from exc
    rates, words = result["rates"], result["per_word"]
    table_md = markdown_table(rates, RATE_COLUMNS)
    figure = chart(rates.filter(rates["group"] != "baseline"), "delta_pct", "delta_ci_low", "delta_ci_high",
                   "Crime-word rate vs baseline (Δ %, 95% CI)")
    payload = {"rates": rates.to_dicts(), "per_word": words.to_dicts(), "settings": result["settings"],
               "inputs": result["manifest"]}
    json_path, md_path = write_report(store, "crime_cooccurrence", payload, table_md + "\n\n" + figure)
    digest = manifest_hash(result["manifest"])
    return MaterializeResult(
        metadata={"table": MetadataValue.md(table_md), "chart": MetadataValue.md(figure),
                  "groups_published": int((~rates["suppressed"]).sum()), "groups_suppressed": int(rates["suppressed"].sum()),
                  "k_min": config.k_min, "attribution": config.attribution, "json": MetadataValue.path(json_path),
                  "inputs_sha256": digest[:16]},
        data_version=DataVersion(digest[:16]),
    )


@asset(
    deps=["gender_labels", "race_labels", "alt_text_scores"],
    code_version="sentiment_by_group-1",
    group_name="reports",
    kinds={"json"},
    description="Negative-sentiment ratio (share of attributed samples whose alt-text is VADER-negative) and mean "
    "compound per perceived group, with 95% CIs; cells below k suppressed.",
)
def sentiment_by_group(
    context: AssetExecutionContext, config: GroupReportConfig, shard_store: ShardStoreResource
) -> MaterializeResult:
    store = shard_store.store()
    try:
        result = sentiment_by_group_tables(store, rule=config.attribution, k_min=config.k_min,
                                           exclude=_exclude(config))
    except NoAttributedSamplesError as exc:
        raise Failure(description=str(exc)) from exc
    table = result["sentiment"]
    table_md = markdown_table(table, SENTIMENT_COLUMNS)
    figure = chart(table, "negative_ratio", "negative_ci_low", "negative_ci_high", "Negative alt-text share (95% CI)")
    json_path, _ = write_report(store, "sentiment_by_group", {"sentiment": table.to_dicts(),
                                                              "settings": result["settings"],
                                                              "inputs": result["manifest"]}, table_md + "\n\n" + figure)
    digest = manifest_hash(result["manifest"])
    return MaterializeResult(
        metadata={"table": MetadataValue.md(table_md), "chart": MetadataValue.md(figure),
                  "groups_suppressed": int(table["suppressed"].sum()), "k_min": config.k_min,
                  "json": MetadataValue.path(json_path), "inputs_sha256": digest[:16]},
        data_version=DataVersion(digest[:16]),
    )
