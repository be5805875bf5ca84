"""Turning long cost rows into a series x day matrix, so statistics run on all series at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from sentinel_pipeline.schema import ANOMALY_COLUMNS, BASELINE_COLUMNS, SERIES_KEY, conform


@dataclass
class CostMatrix:
    """Costs of ``keys`` (one row per series) on ``days`` (one column per day, 0 = no spend)."""

    keys: pd.DataFrame
    days: list[date]
    values: np.ndarray
    present: np.ndarray  # True where the source had a row for that series and day


def to_matrix(rows: pd.DataFrame, first: date, last: date) -> CostMatrix:
    """Pivot rows with usage_date in [first, last] into a dense matrix (others are dropped)."""
    n_days = (last - first).days + 1
    days = [first + timedelta(days=i) for i in range(max(n_days, 0))]
    if rows is None or len(rows) == 0 or n_days <= 0:
        empty_keys = pd.DataFrame({k: pd.Series([], dtype="string") for k in SERIES_KEY})
        shape = (0, len(days))
        return CostMatrix(empty_keys, days, np.zeros(shape), np.zeros(shape, dtype=bool))
    day_numbers = pd.to_datetime(rows["usage_date"]).to_numpy(dtype="datetime64[D]")
    offsets = (day_numbers - np.datetime64(first, "D")).astype(np.int64)
    inside = (offsets >= 0) & (offsets < n_days)
    sub = rows.loc[inside, SERIES_KEY].astype("string")
    codes, uniques = _factorize(sub)
    values = np.zeros((len(uniques), n_days))
    present = np.zeros((len(uniques), n_days), dtype=bool)
    cost = pd.to_numeric(rows.loc[inside, "cost"]).to_numpy(dtype=float)
    np.add.at(values, (codes, offsets[inside]), cost)
    present[codes, offsets[inside]] = True
    return CostMatrix(uniques, days, values, present)


def _factorize(keys: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer code per row and the unique series keys, in first-seen order."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64), keys.reset_index(drop=True)
    codes, uniques = pd.MultiIndex.from_frame(keys).factorize()
    unique_keys = uniques.to_frame(index=False)
    unique_keys.columns = list(keys.columns)
    return codes.astype(np.int64), unique_keys.astype("string")


def day_costs(rows: pd.DataFrame, day: date) -> pd.DataFrame:
    """Total cost per series on one day, with the series' currency."""
    if rows is None or len(rows) == 0:
        return pd.DataFrame(columns=[*SERIES_KEY, "actual_cost", "currency"])
    sub = rows[pd.to_datetime(rows["usage_date"]).dt.date == day]
    if "currency" not in sub.columns:
        sub = sub.assign(currency="USD")
    grouped = sub.groupby(SERIES_KEY, as_index=False, dropna=False).agg(
        actual_cost=("cost", "sum"), currency=("currency", "first")
    )
    return grouped


def baseline_frame(
    keys: pd.DataFrame,
    day: date,
    expected: np.ndarray,
    scale: np.ndarray,
    width: float,
    history_days: np.ndarray,
    method: str,
) -> pd.DataFrame:
    """The cost_baselines rows of one day."""
    df = keys.reset_index(drop=True).copy()
    df.insert(0, "usage_date", day)
    df["expected_cost"] = expected
    df["lower"] = expected - width * scale
    df["upper"] = expected + width * scale
    df["scale"] = scale
    df["history_days"] = history_days.astype(np.int64)
    df["method"] = method
    return conform(df, BASELINE_COLUMNS)


def anomaly_frame(scored: pd.DataFrame) -> pd.DataFrame:
    """The cost_anomalies rows, in contract order."""
    return conform(scored, ANOMALY_COLUMNS)
