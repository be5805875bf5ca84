"""Pure cost-anomaly detection: pandas/numpy only, no Dagster, testable alone.

Each method computes a baseline per series for day D from the days before D, then scores day D's
actual costs against it. ``detect`` runs both steps; the assets call them separately so the
baseline is a table of its own in the UI.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import pandas as pd

from sentinel_pipeline.detection import robust, seed
from sentinel_pipeline.detection.config import METHODS, DetectionConfig

__all__ = [
    "METHODS",
    "DetectionConfig",
    "baselines_for_days",
    "compute_baselines",
    "detect",
    "score_anomalies",
    "anomalies_for_days",
]

HISTORY_WINDOW_DAYS = 90  # the most any method looks back; the assets' partition mapping too


def compute_baselines(history: pd.DataFrame, day: date, config: DetectionConfig) -> pd.DataFrame:
    """Expected cost per series for ``day``, from rows of ``history`` strictly before it."""
    module = seed if config.method == "seed" else robust
    return module.compute_baselines(history, day, config)


def score_anomalies(
    actual: pd.DataFrame, baselines: pd.DataFrame, day: date, config: DetectionConfig
) -> pd.DataFrame:
    """Anomalies of ``day``: its actual costs compared with the baselines of the same method."""
    module = seed if config.method == "seed" else robust
    return module.score_anomalies(actual, baselines, day, config)


def detect(history: pd.DataFrame, today: date, config: DetectionConfig) -> pd.DataFrame:
    """Anomalies of ``today`` given raw rows up to and including it."""
    dates = pd.to_datetime(history["usage_date"]).dt.date if len(history) else pd.Series([])
    actual = history[dates == today] if len(history) else history
    baselines = compute_baselines(history, today, config)
    return score_anomalies(actual, baselines, today, config)


class _DaySlicer:
    """Cuts a long frame into date windows cheaply (dates parsed once, rows sorted once)."""

    def __init__(self, rows: pd.DataFrame) -> None:
        if len(rows) == 0:
            self.rows, self.days = rows, np.array([], dtype="datetime64[D]")
            return
        days = pd.to_datetime(rows["usage_date"]).to_numpy(dtype="datetime64[D]")
        order = np.argsort(days, kind="stable")
        self.rows = rows.iloc[order].reset_index(drop=True)
        self.rows["usage_date"] = days[order]
        self.days = days[order]

    def window(self, first: date, last: date) -> pd.DataFrame:
        lo = np.searchsorted(self.days, np.datetime64(first, "D"), side="left")
        hi = np.searchsorted(self.days, np.datetime64(last, "D"), side="right")
        return self.rows.iloc[lo:hi]


def baselines_for_days(
    history: pd.DataFrame,
    days: list[date],
    config: DetectionConfig,
    progress: Callable[[date], None] | None = None,
) -> dict[date, pd.DataFrame]:
    """Baselines of several days from one history frame (a single-run backfill)."""
    slicer = _DaySlicer(history)
    out: dict[date, pd.DataFrame] = {}
    for day in days:
        window = slicer.window(day - timedelta(days=HISTORY_WINDOW_DAYS), day - timedelta(days=1))
        out[day] = compute_baselines(window, day, config)
        if progress:
            progress(day)
    return out


def anomalies_for_days(
    raw: pd.DataFrame,
    baselines: pd.DataFrame,
    days: list[date],
    config: DetectionConfig,
) -> dict[date, pd.DataFrame]:
    """Anomalies of several days, each day's costs scored against its own baselines."""
    raw_days, base_days = _DaySlicer(raw), _DaySlicer(baselines)
    return {
        day: score_anomalies(raw_days.window(day, day), base_days.window(day, day), day, config)
        for day in days
    }
