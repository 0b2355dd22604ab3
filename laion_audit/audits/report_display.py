"""How published tables read: counts as integers, rates with a few digits, the same in markdown and in the
asset page's table metadata; and the data version of a report.

Sums of weights are floats even when every weight is 1 (the `sample` attribution rule), so a count of two
samples would print as "2.000". A count column shows an integer whenever its value is whole; a weighted count
(`person` rule) keeps its decimals, because there it is not a number of samples.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

COUNT_COLUMNS = frozenset({"n_samples", "n", "n_eff", "hits", "negative_hits", "baseline_n", "baseline_hits",
                           "reviewed", "n_match", "n_nsfw", "groups_published", "groups_suppressed"})
FLOAT_DIGITS = 3
MISSING = "–"


def display_value(column: str, value: Any, float_digits: int = FLOAT_DIGITS) -> Any:
    """The value as a table shows it: whole counts as int, other floats rounded, None kept."""
    if isinstance(value, float) and value == value:  # not NaN
        if column in COUNT_COLUMNS and value.is_integer():
            return int(value)
        return round(value, float_digits)
    return value


def display_cell(column: str, value: Any, float_digits: int = FLOAT_DIGITS) -> str:
    shown = display_value(column, value, float_digits)
    if shown is None:
        return MISSING
    if isinstance(shown, float):
        return f"{shown:.{float_digits}f}"
    return str(shown)


def display_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    return [{c: display_value(c, row.get(c)) for c in columns} for row in rows]


def column_type(column: str, values: Sequence[Any]) -> str:
    """"int", "float", "bool" or "string": the type every non-null displayed value of the column has."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float"
    return "string"


def report_version(name: str, payload: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """A report's data version: its own name, what it published and what it read.

    Two reports reading the same shards (crime_cooccurrence and sentiment_by_group both read group_counts)
    get different versions, and a report recomputed with other settings over the same shards gets a new one.
    """
    content = json.dumps({"report": name, "payload": payload, "inputs": manifest}, sort_keys=True, default=str)
    return hashlib.sha256(content.encode()).hexdigest()[:16]
