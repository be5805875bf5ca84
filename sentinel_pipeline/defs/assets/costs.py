"""raw_daily_costs: what each series cost each day, as the source reports it."""

from datetime import timedelta

import dagster as dg

from sentinel_pipeline.defs.assets.common import (
    add_day_metadata,
    cents,
    markdown_table,
    range_label,
    user_errors,
    write_days,
)
from sentinel_pipeline.defs.checks import RAW_CHECK_SPECS, raw_check_results, validate_raw_costs
from sentinel_pipeline.defs.partitions import DAILY_TABLE, days_in_context
from sentinel_pipeline.defs.resources import CostSourceResource, StorageResource
from sentinel_pipeline.detection.frames import split_days
from sentinel_pipeline.schema import RAW_COLUMNS, SERIES_KEY


@dg.asset(
    **DAILY_TABLE,
    retry_policy=dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL),
    check_specs=RAW_CHECK_SPECS,
    description=(
        "Daily cost per series (service, account, region) from the configured source. "
        "One Parquet file per day: raw_daily_costs/date=YYYY-MM-DD/data.parquet."
    ),
)
def raw_daily_costs(
    context: dg.AssetExecutionContext, source: CostSourceResource, storage: StorageResource
) -> dg.MaterializeResult:
    days = days_in_context(context)
    with user_errors():
        context.log.info(f"Fetching {source.source} costs for {range_label(days)}")
        fetched = source.fetch(days[0], days[-1])
        rows = validate_raw_costs(fetched.rows, days)
        store = storage.store()
        frames = split_days(rows, days)
        paths = write_days(context, store, "raw_daily_costs", frames, RAW_COLUMNS)
        before = store.read_partition("raw_daily_costs", days[0] - timedelta(days=1))
        check_results = raw_check_results(
            store, frames, float(before["cost"].sum()) if before is not None and len(before)
            else None)
    for day, path in zip(days, paths, strict=True):
        day_rows = frames[day]
        add_day_metadata(context, day, {
            "dagster/row_count": len(day_rows),
            "series": int(day_rows[SERIES_KEY].drop_duplicates().shape[0]) if len(day_rows)
            else 0,
            "total_cost": cents(day_rows["cost"].sum() if len(day_rows) else 0),
            "path": dg.MetadataValue.path(path),
            "cost_by_service": dg.MetadataValue.md(markdown_table(
                day_rows.groupby("service", as_index=False)[["cost"]].sum()
                .sort_values("cost", ascending=False) if len(day_rows) else day_rows,
                ["service", "cost"])),
        })
    # The rest is about the run (one fetch for all its days), on every day's event alike.
    return dg.MaterializeResult(
        check_results=check_results,
        metadata={
            "run_days": range_label(days),
            "source": source.source,
            "source_requests": fetched.requests,  # billed API calls (Cost Explorer), whole run
            **fetched.metadata,
        }
    )
