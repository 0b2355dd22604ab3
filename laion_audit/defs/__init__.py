"""Dagster wiring only: assets, sensors, schedules and resources, per domain."""

import warnings

from dagster import BetaWarning

# BackfillPolicy is beta in Dagster 1.13 and we depend on it deliberately (multi-shard runs).
warnings.filterwarnings("ignore", category=BetaWarning, message=".*backfill_policy.*")
