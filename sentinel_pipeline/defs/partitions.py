"""The one daily partitions definition every asset, job, schedule and check uses."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import dagster as dg

from sentinel_pipeline.settings import start_date

# The daily tables, in the order of the flow (cost_anomalies is the unusual rows of
# cost_scores; anomaly_episodes follows cost_anomalies' episodes, annotated_alerts waits for it).
ASSET_NAMES = ["raw_daily_costs", "cost_baselines", "cost_scores", "cost_anomalies",
               "anomaly_episodes", "annotated_alerts"]

# SENTINEL_START_DATE is read here, when the code location loads: partitions are structure,
# not run config, so Dagster needs them before any run.
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=start_date().isoformat(), timezone="UTC", fmt="%Y-%m-%d"
)


def days_in_context(context: dg.AssetExecutionContext) -> list[date]:
    """Every day a run covers: one partition, or a range in a single-run backfill."""
    window = context.partition_time_window
    first = window.start.date()
    n = (window.end.date() - first).days
    return [first + timedelta(days=i) for i in range(n)]


def first_day() -> date:
    """The first daily partition (SENTINEL_START_DATE): no table has a day before it."""
    return daily_partitions.start.date()


# How the four assets depend on each other. Every dependency between them is on the *same* day
# (plain ``deps=[...]``: Dagster's identity mapping), so a backfill of days X..Y from the UI gives
# every selected asset exactly X..Y, and all four run together in one run. The days *before* D
# that an asset needs (cost_baselines: raw_daily_costs D-90..D-1; cost_anomalies: its own D-1 to
# continue episodes) are read from storage inside the asset, not declared as offset partition
# mappings: Dagster derives the downstream days of a backfill through such mappings (raw X..Y
# became baselines X+1..Y+90) and runs a self-dependent asset apart from the others, which split
# a UI backfill into several runs writing days nobody selected. Each asset checks that what it
# reads exists and fails naming the missing days and the rerun, rather than computing a day from
# nothing; its description and per-day metadata say which days it read.

# What every Sentinel table asset shares: daily partitions, one run per backfilled range.
DAILY_TABLE: dict[str, Any] = {
    "partitions_def": daily_partitions,
    "backfill_policy": dg.BackfillPolicy.single_run(),
    "group_name": "sentinel",
    "kinds": {"parquet"},
}
