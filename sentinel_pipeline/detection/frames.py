"""Long cost rows <-> a series x day matrix, so the statistics run on all series at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from sentinel_pipeline.schema import (
    ANOMALY_COLUMNS,
    BASELINE_COLUMNS,
    SERIES_KEY,
    conform,
    empty_frame,
)


@dataclass
class CostMatrix:
    """Costs of ``keys`` (one row per series) on ``days`` (one column per day, 0 = no spend)."""

    keys: pd.DataFrame
    first: date
    values: np.ndarray
    present: np.ndarray  # True where the source had a row for that series and day

    @property
    def n_days(self) -> int:
        return self.values.shape[1]

    def window(self, first: date, last: date) -> CostMatrix:
        """The days [first, last] of the series that have at least one row in them."""
        lo = (first - self.first).days
        hi = (last - self.first).days + 1
        if lo < 0 or hi > self.n_days:
            raise ValueError(f"window {first}..{last} is outside the matrix")
        present = self.present[:, lo:hi]
        rows = present.any(axis=1)
        if rows.all():  # views, no copy: the common case when every series is active
            return CostMatrix(self.keys, first, self.values[:, lo:hi], present)
        return CostMatrix(self.keys.iloc[np.flatnonzero(rows)].reset_index(drop=True), first,
                          self.values[rows, lo:hi], present[rows])

    def day_numbers(self) -> np.ndarray:
        return np.datetime64(self.first, "D") + np.arange(self.n_days)


def usage_days(rows: pd.DataFrame) -> np.ndarray:
    """usage_date as numpy days, whatever it was stored as (date objects, timestamps, text)."""
    column = rows["usage_date"]
    if pd.api.types.is_datetime64_any_dtype(column):
        return column.to_numpy().astype("datetime64[D]")
    return pd.to_datetime(column).to_numpy().astype("datetime64[D]")


def to_matrix(rows: pd.DataFrame, first: date, last: date) -> CostMatrix:
    """Pivot rows with usage_date in [first, last] into a dense matrix (others are dropped)."""
    n_days = max((last - first).days + 1, 0)
    if rows is None or len(rows) == 0 or n_days == 0:
        empty_keys = pd.DataFrame({k: pd.Series([], dtype="string") for k in SERIES_KEY})
        shape = (0, n_days)
        return CostMatrix(empty_keys, first, np.zeros(shape), np.zeros(shape, dtype=bool))
    offsets = (usage_days(rows) - np.datetime64(first, "D")).astype(np.int64)
    inside = (offsets >= 0) & (offsets < n_days)
    codes, uniques = _factorize(rows.loc[inside, SERIES_KEY])
    values = np.zeros((len(uniques), n_days))
    present = np.zeros((len(uniques), n_days), dtype=bool)
    cost = pd.to_numeric(rows.loc[inside, "cost"]).to_numpy(dtype=float)
    np.add.at(values, (codes, offsets[inside]), cost)
    present[codes, offsets[inside]] = True
    return CostMatrix(uniques, first, values, present)


def _factorize(keys: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer code per row and the unique series keys, in first-seen order."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64), keys.astype("string").reset_index(drop=True)
    codes, uniques = pd.MultiIndex.from_frame(keys.astype("string")).factorize()
    assert isinstance(uniques, pd.MultiIndex)  # a MultiIndex factorizes into a MultiIndex
    unique_keys = uniques.to_frame(index=False)
    unique_keys.columns = list(keys.columns)
    return codes.astype(np.int64), unique_keys.astype("string")


def daily_totals(rows: pd.DataFrame) -> pd.DataFrame:
    """Cost per series and day (actual_cost) with the series' currency."""
    columns = ["usage_date", *SERIES_KEY, "actual_cost", "currency"]
    if rows is None or len(rows) == 0:
        return pd.DataFrame({c: [] for c in columns})
    frame = rows.assign(usage_date=usage_days(rows))
    if "currency" not in frame.columns:
        frame = frame.assign(currency="USD")
    frame = frame.astype({k: "string" for k in SERIES_KEY})
    return frame.groupby(["usage_date", *SERIES_KEY], as_index=False, dropna=False).agg(
        actual_cost=("cost", "sum"), currency=("currency", "first")
    )


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """The merge keys in one form, whatever the frame held (also when it is empty)."""
    return frame.assign(usage_date=usage_days(frame)).astype({k: "string" for k in SERIES_KEY})


def join_actual_and_baselines(actual: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """One row per (day, series) seen in either: actual 0 where there was no spend, no baseline
    columns (NaN) where the series had no history."""
    if baselines is None or len(baselines) == 0:
        baselines = pd.DataFrame({c: [] for c in BASELINE_COLUMNS})
    base = _keyed(baselines).drop(columns=["method"])
    merged = _keyed(daily_totals(actual)).merge(base, on=["usage_date", *SERIES_KEY],
                                                how="outer")
    merged["actual_cost"] = merged["actual_cost"].fillna(0.0)
    merged["currency"] = merged["currency"].astype("string").fillna("USD")
    return merged


@cache
def _baseline_types() -> dict[str, Any]:
    """The cost_baselines contract's column types (numpy or pandas dtypes), in contract order."""
    return dict(empty_frame(BASELINE_COLUMNS).dtypes)


def baseline_frame(
    keys: pd.DataFrame, day: date, columns: dict[str, np.ndarray], method: str
) -> pd.DataFrame:
    """The cost_baselines rows of one day, in the contract's order and types (as ``conform``
    makes them: a contract column not given is NaN, or 0 for the day counts).

    Sorted by series, so a day's file is the same whether it was computed alone or in a range.
    Built in one go rather than column by column and then conformed: this runs once per day of
    every baselines computation, and that pandas work was most of a day's cost.
    """
    types = _baseline_types()
    extra = [c for c in columns if c not in types]
    if extra:
        raise ValueError(f"not cost_baselines columns: {extra}")
    keys = keys.reset_index(drop=True)
    order = keys.sort_values(SERIES_KEY, kind="stable").index.to_numpy()
    n = len(order)
    data: dict[str, object] = {"usage_date": np.full(n, day, dtype=object)}
    for key in SERIES_KEY:
        data[key] = keys[key].astype(types[key]).array.take(order)
    for name, dtype in types.items():
        if name in data or name == "method":
            continue
        is_count = pd.api.types.is_integer_dtype(dtype)
        if name not in columns:
            data[name] = np.zeros(n, dtype=np.int64) if is_count else np.full(n, np.nan)
            continue
        values = np.asarray(columns[name])[order]
        if is_count and values.dtype.kind != "i":
            values = np.nan_to_num(values.astype(np.float64), nan=0.0)
        data[name] = values.astype(np.int64 if is_count else np.float64)
    data["method"] = pd.array([method] * n, dtype=types["method"])
    return pd.DataFrame(data)


def anomaly_frame(scored: pd.DataFrame) -> pd.DataFrame:
    """The cost_anomalies rows, in contract order."""
    return conform(scored, ANOMALY_COLUMNS)


def split_days(frame: pd.DataFrame, days: list[date]) -> dict[date, pd.DataFrame]:
    """Rows per usage_date, every requested day present (possibly empty)."""
    if len(frame) == 0:
        return {d: frame for d in days}
    keys = usage_days(frame)
    out = {}
    for day in days:
        out[day] = frame[keys == np.datetime64(day, "D")].reset_index(drop=True)
    return out

