"""Dagster wiring only: assets, sensors, schedules and resources, per domain."""

import warnings

from dagster import BetaWarning

# BackfillPolicy (multi-shard runs) and observable source assets (weights) are beta in Dagster 1.13; used on purpose.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*(backfill_policy|observable_source_asset|DataVersionsByPartition).*")
