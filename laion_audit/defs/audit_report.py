"""`audit_report`: the dataset-level reports assembled into one self-contained HTML file."""

from pathlib import Path

from dagster import AssetExecutionContext, AssetKey, Config, DataVersion, MaterializeResult, MetadataValue, asset

from laion_audit.defs.models import ModelsResource
from laion_audit.defs.resources import ShardStoreResource
from laion_audit.report.audit_report import ANALYSES, build_audit_report, write_audit_report

# The dataset-level assets the report reads: every analysis it has a section for.
REPORTED_ASSETS = [analysis.name for analysis in ANALYSES]


class AuditReportConfig(Config):
    k_min: int = 10
    title: str = "LAION audit report"


@asset(
    deps=REPORTED_ASSETS,
    code_version="audit_report-1",
    group_name="reports",
    kinds={"html"},
    description="One self-contained HTML document (plots embedded, nothing fetched): dataset composition, the "
    "crime, sentiment and keyword audits and every other dataset-level analysis in the store, each with the "
    "models, code versions, shards and run ids behind it, and generated methods and limitations.",
)
def audit_report(context: AssetExecutionContext, config: AuditReportConfig, shard_store: ShardStoreResource,
                 models: ModelsResource) -> MaterializeResult:
    store = shard_store.store()
    run_ids = {}
    for analysis in ANALYSES:
        event = context.instance.get_latest_materialization_event(AssetKey(analysis.name))
        if event is not None:
            run_ids[analysis.name] = event.run_id
    html, summary = build_audit_report(store, models.registry(), k_min=config.k_min, run_ids=run_ids,
                                       title=config.title)
    path = write_audit_report(store, html)
    metadata = {"path": MetadataValue.path(path), "sections": len(summary["sections"]),
                "analyses_missing": MetadataValue.json(summary["missing"]),
                "warnings": MetadataValue.json(summary["warnings"]), "shards": summary["shards"]}
    if Path(path).is_absolute():
        metadata["open"] = MetadataValue.url(Path(path).as_uri())
    return MaterializeResult(metadata=metadata, data_version=DataVersion(summary["content_sha256"][:16]))
