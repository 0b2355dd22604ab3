"""Published group tables: crime-word co-occurrence and sentiment by perceived group (aggregates over shards).

Shards from different version sets are not pooled: by default the run fails naming them (re-materialize the
stale ones); with ``mixed_versions: per_version_set`` the report has one section per version set and the JSON
is keyed by version-set label under ``by_version_set``.
"""

from collections.abc import Callable
from typing import Any, Literal

import polars as pl
from dagster import AssetExecutionContext, Config, DataVersion, Failure, MaterializeResult, MetadataValue, asset

from laion_audit.audits.report_display import report_version
from laion_audit.audits.report_inputs import MixedVersionsError, manifest_hash, write_report
from laion_audit.defs.report_metadata import table_metadata
from laion_audit.defs.resources import ShardStoreResource
from laion_audit.audits.group_tables import DELTA_INTERVAL, NoAttributedSamplesError, chart, crime_cooccurrence
from laion_audit.audits.group_tables import markdown_table
from laion_audit.audits.group_tables import sentiment_by_group as sentiment_by_group_tables
from laion_audit.shards.store import ShardStore

RATE_COLUMNS = ["group", "n_samples", "hits", "rate", "ci_low", "ci_high", "p_base", "delta_pct", "delta_ci_low",
                "delta_ci_high", "suppressed"]
SENTIMENT_COLUMNS = ["group", "n_samples", "negative_ratio", "negative_ci_low", "negative_ci_high",
                     "compound_mean", "compound_ci_low", "compound_ci_high", "suppressed"]


LABEL_ASSETS = ("gender_labels", "race_labels")


class GroupReportConfig(Config):
    attribution: Literal["sample", "person"] = "sample"
    k_min: int = 10
    exclude_unclear: bool = True
    # "refuse": fail when an input's shards come from several version sets; "per_version_set": one table each.
    mixed_versions: Literal["refuse", "per_version_set"] = "refuse"


def _exclude(config: GroupReportConfig) -> tuple[str, ...]:
    return ("unclear",) if config.exclude_unclear else ()


def _tables(compute: Callable[..., dict[str, Any]], store: ShardStore, config: GroupReportConfig
            ) -> dict[str, Any] | NoAttributedSamplesError:
    """The tables, or the reason there are none: text-only data (LAION metadata parquet) has no person labels,
    which is an answer to publish, not a failed run."""
    try:
        return compute(store, rule=config.attribution, k_min=config.k_min, exclude=_exclude(config),
                       mixed_versions=config.mixed_versions)
    except NoAttributedSamplesError as exc:
        labelled = [asset for asset in LABEL_ASSETS if store.complete_shards(asset, True)]
        if labelled:  # labels exist, their counts do not yet: a step missing, not text-only data
            raise Failure(description=f"{exc}; {' and '.join(labelled)} have complete shards: run group_counts_job "
                          "for them first") from exc
        return exc
    except (MixedVersionsError, ValueError) as exc:  # a mix, or a crime review edited since: retrying cannot help
        raise Failure(description=str(exc), allow_retries=False) from exc


def _shards_line(manifest: dict[str, Any]) -> str:
    shards = sorted({shard for by_shard in manifest.values() for shard in by_shard})
    more = f", … (+{len(shards) - 5} more)" if len(shards) > 5 else ""
    return f"{len(shards)} shard{'s' if len(shards) != 1 else ''}: {', '.join(shards[:5])}{more}"


def _inputs_line(manifest: dict[str, Any]) -> str:
    """The version sets of the labels and scores a section's counts were made from."""
    found: dict[str, set[str]] = {}
    for by_shard in manifest.values():
        for entry in by_shard.values():
            for asset, version_set in (entry.get("inputs") or {}).items():
                found.setdefault(asset, set()).add(version_set)
    return "made from " + ", ".join(f"{asset} {'/'.join(sorted(v))}" for asset, v in sorted(found.items()))


Render = Callable[[dict[str, Any]], tuple[dict[str, Any], pl.DataFrame, str, str]]


def _publish(store: ShardStore, name: str, result: dict[str, Any], render: Render,
             columns: list[str]) -> tuple[dict[str, Any], str]:
    """Write the report (one section per version set when there are several); return metadata and data version.

    ``render(group)`` gives the group's JSON tables, its published frame (for suppression counts), table and chart.
    """
    groups = result.get("by_version_set") or {None: result}
    payloads, tables, charts, sections, frames = {}, [], [], [], []
    for label, group in groups.items():
        payload, frame, table_md, figure = render(group)
        heading = "" if label is None else (f"## Version set {label}\n\n{_shards_line(group['manifest'])}; "
                                            f"{_inputs_line(group['manifest'])}\n\n")
        payloads[label] = {**payload, "inputs": group["manifest"]}
        tables.append(heading + table_md)
        charts.append(heading + figure)
        sections.append(f"{heading}{table_md}\n\n{figure}")
        frames.append(frame)
    if None in payloads:
        payload = payloads[None]
    else:
        payload = {"by_version_set": payloads, "inputs": result["manifest"]}
        sections.insert(0, f"Inputs come from {len(groups)} version sets (mixed_versions: per_version_set); each "
                        "is reported on its own, and figures from different sections must not be pooled.")
    written = {**payload, "settings": result["settings"]}
    json_path, _ = write_report(store, name, written, "\n\n".join(sections))
    digest = manifest_hash(result["manifest"])
    suppressed = sum(int(frame["suppressed"].sum()) for frame in frames)
    metadata = {"table_markdown": MetadataValue.md("\n\n".join(tables)),
                "chart": MetadataValue.md("\n\n".join(charts)),
                "groups_published": sum(frame.height for frame in frames) - suppressed,
                "groups_suppressed": suppressed, "version_sets": len(groups), "json": MetadataValue.path(json_path),
                "inputs_sha256": digest[:16]}
    if len(frames) == 1:  # one version set: the table itself inline on the asset page
        metadata["table"] = table_metadata(frames[0].to_dicts(), columns)
    return metadata, report_version(name, written, result["manifest"])


def _no_labelled_shards(store: ShardStore, name: str, reason: NoAttributedSamplesError,
                        config: GroupReportConfig) -> MaterializeResult:
    """Publish that there is nothing to tabulate, and why, so a text-only dataset's report run succeeds."""
    message = (f"No labelled shard: {reason}. This table needs person labels, which text-only shards (LAION "
               "metadata parquet) cannot have; the keyword audit covers those.")
    payload = {"status": "no_labelled_shards", "message": message, "inputs": {}, "settings": config.model_dump()}
    json_path, _ = write_report(store, name, payload, f"**{message}**\n")
    return MaterializeResult(
        metadata={"status": "no labelled shard", "report": MetadataValue.md(message), "groups_published": 0,
                  "json": MetadataValue.path(json_path)},
        data_version=DataVersion(report_version(name, payload, {})))


def _render_rates(group: dict[str, Any]) -> tuple[dict[str, Any], pl.DataFrame, str, str]:
    rates = group["rates"]
    figure = chart(rates.filter(rates["group"] != "baseline"), "delta_pct", "delta_ci_low", "delta_ci_high",
                   "Crime-word rate vs baseline (Δ %, 95% CI)")
    payload = {"rates": rates.to_dicts(), "per_word": group["per_word"].to_dicts()}
    note = f"\n\nΔ 95% CI: {DELTA_INTERVAL}."
    words = group["per_word"]
    if "precision" in words.columns:
        reviewed = words.filter(pl.col("group") == "baseline").select("word", "baseline_hits", "reviewed", "precision")
        note += ("\n\nCrime-word precision from the review the scores were filtered with (share of reviewed "
                 "matches that are about crime; words below min_precision were not matched):\n\n"
                 + markdown_table(reviewed, ["word", "baseline_hits", "reviewed", "precision"]))
    return payload, rates, markdown_table(rates, RATE_COLUMNS) + note, figure


def _render_sentiment(group: dict[str, Any]) -> tuple[dict[str, Any], pl.DataFrame, str, str]:
    table = group["sentiment"]
    figure = chart(table, "negative_ratio", "negative_ci_low", "negative_ci_high", "Negative alt-text share (95% CI)")
    return {"sentiment": table.to_dicts()}, table, markdown_table(table, SENTIMENT_COLUMNS), figure


@asset(
    name="crime_cooccurrence",
    deps=["group_counts"],
    code_version="crime_cooccurrence-4",
    group_name="reports",
    kinds={"json"},
    description="Rate of crime words in alt-texts of samples attributed to each perceived group (gender, race, "
    "intersections) vs all samples with a valid person: Δ = (p_group / p_baseline − 1)·100 with Wilson 95% CIs "
    "for rates and a 95% CI for Δ that accounts for the group being part of its baseline; per-word breakdown; "
    "cells below k suppressed. Summed from every shard's group_counts.",
)
def crime_cooccurrence_table(
    context: AssetExecutionContext, config: GroupReportConfig, shard_store: ShardStoreResource
) -> MaterializeResult:
    store = shard_store.store()
    result = _tables(crime_cooccurrence, store, config)
    if isinstance(result, NoAttributedSamplesError):
        return _no_labelled_shards(store, "crime_cooccurrence", result, config)
    metadata, version = _publish(store, "crime_cooccurrence", result, _render_rates, RATE_COLUMNS)
    return MaterializeResult(
        metadata={**metadata, "k_min": config.k_min, "attribution": config.attribution,
                  "delta_interval": result["settings"]["delta_interval"]},
        data_version=DataVersion(version),
    )


@asset(
    deps=["group_counts"],
    code_version="sentiment_by_group-4",
    group_name="reports",
    kinds={"json"},
    description="Negative-sentiment ratio (share of attributed samples whose alt-text is VADER-negative) and mean "
    "compound per perceived group, with 95% CIs; cells below k suppressed. Summed from every shard's group_counts.",
)
def sentiment_by_group(
    context: AssetExecutionContext, config: GroupReportConfig, shard_store: ShardStoreResource
) -> MaterializeResult:
    store = shard_store.store()
    result = _tables(sentiment_by_group_tables, store, config)
    if isinstance(result, NoAttributedSamplesError):
        return _no_labelled_shards(store, "sentiment_by_group", result, config)
    metadata, version = _publish(store, "sentiment_by_group", result, _render_sentiment, SENTIMENT_COLUMNS)
    return MaterializeResult(metadata={**metadata, "k_min": config.k_min}, data_version=DataVersion(version))
