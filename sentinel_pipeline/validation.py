"""Checks on cost rows before anything is written: bad data stops the run with a fix."""

from __future__ import annotations

from datetime import date

import pandas as pd

from sentinel_pipeline.errors import SourceError
from sentinel_pipeline.schema import RAW_COLUMNS, SERIES_KEY, conform


def validate_raw_costs(rows: pd.DataFrame, days: list[date]) -> pd.DataFrame:
    """Contract columns present, no NaN cost, one currency per series, dates inside the run."""
    missing = [c for c in RAW_COLUMNS if c not in rows.columns]
    if missing:
        raise SourceError(
            f"The cost source returned no column(s) {', '.join(missing)}; every source must "
            f"return {', '.join(RAW_COLUMNS)}."
        )
    rows = conform(rows, RAW_COLUMNS)
    if len(rows) == 0:
        return rows
    bad_cost = rows["cost"].isna()
    if bad_cost.any():
        first = rows[bad_cost].iloc[0]
        raise SourceError(
            f"{int(bad_cost.sum())} cost row(s) have no numeric cost, e.g. {first['service']} / "
            f"{first['account_id']} / {first['region']} on {first['usage_date']}: fix the "
            "source data or exclude those rows."
        )
    outside = ~rows["usage_date"].isin(set(days))
    if outside.any():
        raise SourceError(
            f"The cost source returned rows for {rows.loc[outside, 'usage_date'].iloc[0]}, "
            f"outside the requested days {days[0]}..{days[-1]}."
        )
    currencies = rows.groupby(SERIES_KEY, dropna=False)["currency"].nunique()
    mixed = currencies[currencies > 1]
    if len(mixed):
        key = mixed.index[0]
        found = sorted(rows.set_index(SERIES_KEY).loc[key, "currency"].astype(str).unique())
        raise SourceError(
            f"Series {' / '.join(map(str, key))} has costs in {', '.join(found)}: "
            "export one billing currency, or convert before loading."
        )
    return rows
