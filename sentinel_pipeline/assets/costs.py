"""raw_daily_costs: what each series cost each day, as the source reports it."""

from datetime import timedelta

import dagster as dg

from sentinel_pipeline.assets.common import (
    markdown_table,
    range_label,
    user_errors,
    write_days,
)
from sentinel_pipeline.assets.raw_checks import RAW_BLOCKING_CHECKS, raw_check_results
from sentinel_pipeline.detection.frames import split_days
from sentinel_pipeline.partitions import DAILY_TABLE, days_in_context
from sentinel_pipeline.quality_checks import raw_days_complete
from sentinel_pipeline.resources import CostSourceResource, StorageResource
from sentinel_pipeline.schema import RAW_COLUMNS, SERIES_KEY
from sentinel_pipeline.validation import validate_raw_costs


@dg.asset(
    **DAILY_TABLE,
    retry_policy=dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL),
    check_specs=[dg.AssetCheckSpec(
        "days_complete", asset="raw_daily_costs",
        description="Every day has costs and none is under half the day before "
        "(missing accounts or services, or an export not yet delivered)."),
        *RAW_BLOCKING_CHECKS],
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
        source_metadata = dict(fetched.attrs.get("metadata", {}))  # e.g. API requests made
        rows = validate_raw_costs(fetched, days)
        store = storage.store()
        frames = split_days(rows, days)
        paths = write_days(context, store, "raw_daily_costs", frames, RAW_COLUMNS)
        before = store.read_partition("raw_daily_costs", days[0] - timedelta(days=1))
        passed, details = raw_days_complete(
            frames, float(before["cost"].sum()) if before is not None and len(before) else None)
        blocking_results = raw_check_results(store, frames)
    by_service = (rows.groupby("service", as_index=False)["cost"].sum()
                  .sort_values("cost", ascending=False))
    return dg.MaterializeResult(
        check_results=[dg.AssetCheckResult(
            check_name="days_complete", passed=passed, metadata=details,
            severity=dg.AssetCheckSeverity.WARN), *blocking_results],
        metadata={
            "dagster/row_count": len(rows),
            "days": len(days),
            "series": int(rows[SERIES_KEY].drop_duplicates().shape[0]) if len(rows) else 0,
            "total_cost": dg.MetadataValue.float(float(rows["cost"].sum())),
            "last_day_cost": dg.MetadataValue.float(float(frames[days[-1]]["cost"].sum())),
            "source": source.source,
            "path": dg.MetadataValue.path(paths[0] if len(paths) == 1 else paths[0].rsplit(
                "/date=", 1)[0]),
            "cost_by_service": dg.MetadataValue.md(markdown_table(by_service, ["service", "cost"])),
            **source_metadata,
        }
    )
