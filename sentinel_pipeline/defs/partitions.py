"""The one daily partitions definition every asset, job, schedule and check uses."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import dagster as dg

from sentinel_pipeline.settings import start_date

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


def earlier_days(asset: str, first: int, last: int) -> dg.AssetDep:
    """A dependency on the days ``first``..``last`` (negative offsets) of a daily asset; the
    first days of the partition range have no such days, which is allowed."""
    return dg.AssetDep(
        asset,
        partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=first, end_offset=last, allow_nonexistent_upstream_partitions=True
        ),
    )


# What every Sentinel table asset shares: daily partitions, one run per backfilled range.
DAILY_TABLE: dict[str, Any] = {
    "partitions_def": daily_partitions,
    "backfill_policy": dg.BackfillPolicy.single_run(),
    "group_name": "sentinel",
    "kinds": {"parquet"},
}
