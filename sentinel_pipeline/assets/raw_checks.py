"""The blocking data-quality checks of raw_daily_costs, run on what the asset just wrote.

validate_raw_costs already refuses NaN costs and mixed currencies before anything is written;
these checks prove it in the UI on every partition and stop the run before baselines, anomalies
and Slack if a future source or schema change lets bad rows through. The schema check reads
the written files back, so it sees what DuckDB or Athena will see.
"""

from collections.abc import Mapping
from datetime import date

import dagster as dg
import pandas as pd

from sentinel_pipeline.quality_checks import (
    RAW_ARROW_TYPES,
    parquet_schema_matches,
    raw_no_missing_values,
    raw_one_currency_per_series,
)
from sentinel_pipeline.storage import TableStore

TABLE = "raw_daily_costs"

RAW_BLOCKING_CHECKS = [
    dg.AssetCheckSpec(
        "no_missing_values", asset=TABLE, blocking=True,
        description="No NaN cost and no empty date, service, account, region or currency. "
        "Blocking: a NaN sums to nothing and would hide spend from the anomalies."),
    dg.AssetCheckSpec(
        "one_currency_per_series", asset=TABLE, blocking=True,
        description="Each (service, account, region) is billed in one currency. Blocking: "
        "baselines mixing EUR and USD would alert on exchange rates."),
    dg.AssetCheckSpec(
        "schema_matches", asset=TABLE, blocking=True,
        description="The written Parquet files have the DESIGN.md columns in order with their "
        "types (date32, strings, float64 cost, bool estimated). Blocking: downstream assets "
        "and SQL readers rely on them."),
]


def raw_check_results(
    store: TableStore, frames: Mapping[date, pd.DataFrame]
) -> list[dg.AssetCheckResult]:
    """Results of the blocking checks for the days written (the schema on the first and last
    file, read back from storage)."""
    no_missing, missing_details = raw_no_missing_values(frames)
    one_currency, currency_details = raw_one_currency_per_series(frames)
    schema_ok, schema_details = True, {}
    for day in sorted({min(frames), max(frames)}):
        schema = store.read_schema(TABLE, day)
        if schema is None:
            schema_ok, schema_details = False, {"problems": f"{day}: file not found after write"}
            break
        schema_ok, details = parquet_schema_matches(schema, RAW_ARROW_TYPES)
        schema_details = {**details, "file_day": str(day)}
        if not schema_ok:
            break
    return [
        dg.AssetCheckResult(check_name="no_missing_values", passed=no_missing,
                            metadata=missing_details),
        dg.AssetCheckResult(check_name="one_currency_per_series", passed=one_currency,
                            metadata=currency_details),
        dg.AssetCheckResult(check_name="schema_matches", passed=schema_ok,
                            metadata=schema_details),
    ]
