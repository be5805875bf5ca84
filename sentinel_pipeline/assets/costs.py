"""raw_daily_costs: what each series cost each day, as the source reports it."""

import dagster as dg

from sentinel_pipeline.assets.common import (
    markdown_table,
    range_label,
    split_by_day,
    user_errors,
    write_days,
)
from sentinel_pipeline.partitions import DAILY_TABLE, days_in_context
from sentinel_pipeline.resources import CostSourceResource, StorageResource
from sentinel_pipeline.schema import RAW_COLUMNS, SERIES_KEY
from sentinel_pipeline.validation import validate_raw_costs


@dg.asset(
    **DAILY_TABLE,
    retry_policy=dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL),
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
        rows = validate_raw_costs(source.fetch(days[0], days[-1]), days)
        paths = write_days(context, storage.store(), "raw_daily_costs", split_by_day(rows, days),
                           RAW_COLUMNS)
    by_service = (rows.groupby("service", as_index=False)["cost"].sum()
                  .sort_values("cost", ascending=False))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "days": len(days),
            "series": int(rows[SERIES_KEY].drop_duplicates().shape[0]) if len(rows) else 0,
            "total_cost": dg.MetadataValue.float(float(rows["cost"].sum())),
            "source": source.source,
            "path": dg.MetadataValue.path(paths[0] if len(paths) == 1 else paths[0].rsplit(
                "/date=", 1)[0]),
            "cost_by_service": dg.MetadataValue.md(markdown_table(by_service, ["service", "cost"])),
        }
    )
