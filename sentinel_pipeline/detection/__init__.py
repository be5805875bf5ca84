"""Pure cost-anomaly detection: pandas/numpy only, no Dagster, testable alone.

Each method computes a baseline per series for day D from the days before D, then scores day D's
actual costs against it. The assets call the two steps separately, so the baseline is a table of
its own in the UI; ``detect`` runs both for one day.

Series are processed as one matrix (series x days) built once per call, so a range of days and
any number of series cost a few numpy passes, not a Python loop per series.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from types import ModuleType

import numpy as np
import pandas as pd
import pyarrow as pa

from sentinel_pipeline.detection import robust, seed
from sentinel_pipeline.detection.config import METHODS, DetectionConfig
from sentinel_pipeline.detection.frames import (
    CostMatrix,
    anomaly_frame,
    join_actual_and_baselines,
    split_days,
    to_matrix,
    usage_days,
)

__all__ = [
    "HISTORY_WINDOW_DAYS",
    "METHODS",
    "DetectionConfig",
    "anomalies_for_days",
    "baselines_for_days",
    "compute_baselines",
    "detect",
    "score_anomalies",
    "scores_for_days",
]

HISTORY_WINDOW_DAYS = 90  # the most any method looks back: what cost_baselines reads before D


def _method(config: DetectionConfig) -> ModuleType:
    return seed if config.method == "seed" else robust


def baselines_for_days(
    history: pd.DataFrame | pa.Table | Callable[[date, date], CostMatrix],
    days: list[date],
    config: DetectionConfig,
    progress: Callable[[date], None] | None = None,
) -> dict[date, pd.DataFrame]:
    """Baselines of each day from rows of ``history`` strictly before it. ``history`` may also
    be a function giving the matrix of days first..last, so a caller reading files (the
    cost_baselines asset) reads only the days the method looks at straight into it."""
    method = _method(config)
    span = timedelta(days=method.history_days(config))
    one = timedelta(days=1)
    first, last = min(days) - span, max(days) - one
    matrix = history(first, last) if callable(history) else to_matrix(history, first, last)
    out: dict[date, pd.DataFrame] = {}
    for day in days:
        out[day] = method.baselines_from_matrix(matrix.window(day - span, day - one), day, config)
        if progress:
            progress(day)
    return out


def compute_baselines(
    history: pd.DataFrame | pa.Table, day: date, config: DetectionConfig
) -> pd.DataFrame:
    """Expected cost per series for ``day``, from rows of ``history`` strictly before it."""
    return baselines_for_days(history, [day], config)[day]


def scores_for_days(
    raw: pd.DataFrame,
    baselines: pd.DataFrame,
    days: list[date],
    config: DetectionConfig,
    previous: pd.DataFrame | None = None,
) -> dict[date, pd.DataFrame]:
    """Every series of each day, scored against its own baselines; ``kind`` is "" on a normal
    day. ``previous``: the anomalies of the day before ``days`` (as stored), so an episode
    already alerted there is continued, not alerted again.
    """
    wanted = np.array(days, dtype="datetime64[D]")
    if len(raw):
        raw = raw[np.isin(usage_days(raw), wanted)]
    if len(baselines):
        baselines = baselines[np.isin(usage_days(baselines), wanted)]
    merged = join_actual_and_baselines(raw, baselines)
    scored = _method(config).score(merged, config, previous) if len(merged) else merged
    return split_days(scored, days)


def anomalies_for_days(
    raw: pd.DataFrame,
    baselines: pd.DataFrame,
    days: list[date],
    config: DetectionConfig,
    previous: pd.DataFrame | None = None,
) -> dict[date, pd.DataFrame]:
    """Anomalies of each day (the unusual rows of ``scores_for_days``), in contract order,
    listed as the method lists them (robust: largest $ impact first; seed: largest % rise)."""
    scored = scores_for_days(raw, baselines, days, config, previous)
    column, ascending = _method(config).ANOMALY_ORDER
    return {day: anomaly_frame(_unusual(frame, column, ascending))
            for day, frame in scored.items()}


def _unusual(scored: pd.DataFrame, column: str, ascending: bool) -> pd.DataFrame:
    if len(scored) == 0 or "kind" not in scored.columns:
        return scored
    rows = scored[scored["kind"].astype(str) != ""]
    return rows.sort_values(column, ascending=ascending, kind="stable").reset_index(drop=True)


def score_anomalies(
    actual: pd.DataFrame, baselines: pd.DataFrame, day: date, config: DetectionConfig
) -> pd.DataFrame:
    """Anomalies of ``day``: its actual costs compared with the baselines of the same method."""
    return anomalies_for_days(actual, baselines, [day], config)[day]


def detect(history: pd.DataFrame, today: date, config: DetectionConfig) -> pd.DataFrame:
    """Anomalies of ``today`` given raw rows up to and including it."""
    return score_anomalies(history, compute_baselines(history, today, config), today, config)
