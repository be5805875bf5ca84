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
from sentinel_pipeline.detection.feedback import accepted_episodes, level_since, raised_bars
from sentinel_pipeline.detection.frames import (
    CostMatrix,
    anomaly_frame,
    join_actual_and_baselines,
    split_days,
    to_matrix,
    usage_days,
)
from sentinel_pipeline.detection.verdicts import DayScorer, Earlier, FlaggedDays
from sentinel_pipeline.schema import SERIES_KEY

__all__ = [
    "HISTORY_WINDOW_DAYS",
    "METHODS",
    "DetectionConfig",
    "Earlier",
    "anomalies_for_days",
    "anomalies_of_scores",
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
    feedback: pd.DataFrame | None = None,
    earlier: Earlier | None = None,
) -> dict[date, pd.DataFrame]:
    """Baselines of each day from rows of ``history`` strictly before it. ``history`` may also
    be a function giving the matrix of days first..last, so a caller reading files (the
    cost_baselines asset) reads only the days the method looks at straight into it.
    ``feedback`` (the alert_feedback table, robust only): episodes marked expected / planned
    have their new level adopted from the day after their alert (feedback.py).

    Robust only: the days of episodes Sentinel flagged are left out of the history
    (verdicts.py): those ``earlier`` holds (cost_anomalies stored before the first day), and
    those of the days of this range, each scored as soon as its baseline is known, carrying
    on from the state ``earlier`` holds for the day before the first (as cost_scores does)."""
    method = _method(config)
    span = timedelta(days=method.history_days(config))
    one = timedelta(days=1)
    first, last = min(days) - span, max(days) - one
    matrix = history(first, last) if callable(history) else to_matrix(history, first, last)
    robust_method = config.method == "robust"
    accepted = accepted_episodes(feedback) if robust_method else None
    scorer = (DayScorer(config, FlaggedDays(matrix, feedback), earlier, feedback)
              if robust_method else None)
    wanted = set(days)
    out: dict[date, pd.DataFrame] = {}
    for day in days:
        if scorer is None:
            out[day] = method.baselines_from_matrix(matrix.window(day - span, day - one), day,
                                                    config)
        else:
            window, rows = matrix.window_and_rows(day - span, day - one)
            lo, hi = ((day - span) - matrix.first).days, (day - matrix.first).days
            since = (level_since(accepted, window.keys, day)
                     if accepted is not None and len(accepted) else None)
            out[day] = robust.baselines_from_matrix(window, day, config, since,
                                                    scorer.flagged.window(rows, lo, hi))
            if day + one in wanted:  # a later day of the range learns from this one's verdicts
                scorer.score(day, out[day], window.keys, rows)
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
    feedback: pd.DataFrame | None = None,
    drift_before: pd.DataFrame | None = None,
) -> dict[date, pd.DataFrame]:
    """Every series of each day, scored against its own baselines; ``kind`` is "" on a normal
    day. ``previous``: the anomalies of the day before ``days`` (as stored), so an episode
    already alerted there is continued, not alerted again. ``feedback``: the alert_feedback
    table (robust only): not_anomaly verdicts raise that series' bar for that kind.
    ``drift_before``: the scores of the day before ``days`` (as stored), whose drift
    statistics (cusum, cusum_large) the robust method carries on from.

    A caller that passes ``raw`` and ``baselines`` without keeping them lets them be freed as
    soon as they are joined (a year of 10,000 series is 3.65 million rows of each).
    """
    inputs = [raw, baselines]
    del raw, baselines
    return _scored_days(inputs, days, config, previous, feedback, drift_before)


def _scored_days(
    inputs: list[pd.DataFrame],
    days: list[date],
    config: DetectionConfig,
    previous: pd.DataFrame | None,
    feedback: pd.DataFrame | None = None,
    drift_before: pd.DataFrame | None = None,
) -> dict[date, pd.DataFrame]:
    """scores_for_days of ``[raw, baselines]``, emptying the list: each frame is dropped as
    soon as it is no longer needed, so the range's frames are not all alive at once."""
    wanted = np.array(days, dtype="datetime64[D]")
    raw = _rows_of(inputs.pop(0), wanted, _RAW_NEEDED)
    baselines = _rows_of(inputs.pop(0), wanted)
    merged = join_actual_and_baselines(raw, baselines)
    del raw, baselines
    if len(merged):
        if config.method == "robust":
            bars = raised_bars(feedback, config.score_threshold)
            merged = robust.score(merged, config, previous, bars, drift_before)
        else:  # seed: the fixed reference rule, feedback ignored
            merged = seed.score(merged, config, previous)
    return split_days(merged, days)


_RAW_NEEDED = ["usage_date", *SERIES_KEY, "cost", "currency"]  # what the join reads of raw


def _rows_of(frame: pd.DataFrame, wanted: np.ndarray,
             columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of ``frame`` on the wanted days (only ``columns`` of them, those it has)."""
    if columns is not None and len(frame.columns):
        frame = frame[[c for c in columns if c in frame.columns]]
    if len(frame):
        keep = np.isin(usage_days(frame), wanted)
        if not keep.all():
            frame = frame[keep]
    return frame


def anomalies_for_days(
    raw: pd.DataFrame,
    baselines: pd.DataFrame,
    days: list[date],
    config: DetectionConfig,
    previous: pd.DataFrame | None = None,
    feedback: pd.DataFrame | None = None,
) -> dict[date, pd.DataFrame]:
    """Anomalies of each day (the unusual rows of ``scores_for_days``), in contract order,
    listed as the method lists them (robust: largest $ impact first; seed: largest % rise)."""
    inputs = [raw, baselines]
    del raw, baselines
    scored = _scored_days(inputs, days, config, previous, feedback)
    out = {}
    for day in list(scored):  # each day's scores freed once its anomalies are taken
        out[day] = anomalies_of_scores(scored.pop(day), config.method)
    return out


def anomalies_of_scores(scored: pd.DataFrame, method: str) -> pd.DataFrame:
    """The unusual rows of one day's scores (cost_scores), in contract order, listed as the
    method lists them (robust: largest $ impact first; seed: largest % rise)."""
    column, ascending = (seed if method == "seed" else robust).ANOMALY_ORDER
    return anomaly_frame(_unusual(scored, column, ascending))


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
