"""Report tables as Dagster table metadata, so the asset page shows them inline (markdown opens a dialog)."""

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from laion_audit.audits.report_display import column_type, display_rows


def table_metadata(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> MetadataValue:
    """``rows`` (dicts) restricted to the ``columns`` some row has, counts as integers."""
    present = [c for c in columns if any(c in row for row in rows)] or list(columns)
    shown = display_rows(rows, present)
    schema = TableSchema(columns=[TableColumn(c, column_type(c, [r[c] for r in shown])) for c in present])
    return MetadataValue.table([TableRecord(row) for row in shown], schema=schema)
