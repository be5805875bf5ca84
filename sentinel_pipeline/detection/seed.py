"""The reference rule of the blog seed, reproduced exactly, vectorised over all series.

For day D: look at the 30 days ending on D (days without spend have no row). A series needs at
least 8 rows there, one of them on D. Its history is its 7 latest rows before D. Skip it when D's
cost is under $1, or the history's mean or sample standard deviation is 0. Flag it when
z = (cost - mean) / std > 2.0 and the increase over the mean > 50 %. Sort by % increase.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from sentinel_pipeline.detection.config import DetectionConfig
from sentinel_pipeline.detection.frames import anomaly_frame, baseline_frame, day_costs, to_matrix
from sentinel_pipeline.schema import SERIES_KEY

WINDOW_DAYS = 30
HISTORY_ROWS = 7
Z_THRESHOLD = 2.0
MIN_PCT_INCREASE = 50.0
MIN_DAY_COST = 1.0


def compute_baselines(history: pd.DataFrame, day: date, config: DetectionConfig) -> pd.DataFrame:
    """Mean and sample std of each series' 7 latest rows in the 29 days before ``day``."""
    first = day - timedelta(days=WINDOW_DAYS - 1)
    matrix = to_matrix(history, first, day - timedelta(days=1))
    values, present = matrix.values, matrix.present
    # Rank rows from the latest day backwards; keep the 7 latest rows that exist, in date order.
    rank_from_end = np.cumsum(present[:, ::-1], axis=1)[:, ::-1]
    take = present & (rank_from_end <= HISTORY_ROWS)
    order = np.argsort(~take, axis=1, kind="stable")[:, :HISTORY_ROWS]
    picked = np.take_along_axis(values, order, axis=1)
    valid = np.take_along_axis(take, order, axis=1)
    picked = np.ascontiguousarray(np.where(valid, picked, 0.0))
    count = valid.sum(axis=1)
    # Same arithmetic, in the same order, as pandas' mean() and std(ddof=1) in the seed.
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = picked.sum(axis=1) / count
        sq = np.where(valid, (mean[:, None] - picked) ** 2, 0.0).sum(axis=1)
        std = np.sqrt(sq / (count - 1))
    mean = np.where(count > 0, mean, np.nan)
    std = np.where(count > 1, std, np.nan)
    return baseline_frame(matrix.keys, day, mean, std, Z_THRESHOLD, count, "seed")


def score_anomalies(
    actual: pd.DataFrame, baselines: pd.DataFrame, day: date, config: DetectionConfig
) -> pd.DataFrame:
    """Flag day ``day`` of each series with a full 7-row history by the seed rule."""
    today = day_costs(actual, day)
    merged = today.merge(baselines.astype({k: "string" for k in SERIES_KEY}),
                         on=SERIES_KEY, how="inner") if len(today) else today
    if len(merged) == 0:
        return anomaly_frame(pd.DataFrame())
    cost = merged["actual_cost"].to_numpy(dtype=float)
    mean = merged["expected_cost"].to_numpy(dtype=float)
    std = merged["scale"].to_numpy(dtype=float)
    eligible = (
        (merged["history_days"].to_numpy() >= HISTORY_ROWS)
        & (cost >= MIN_DAY_COST)
        & (mean != 0)
        & (std != 0)
        & np.isfinite(std)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (cost - mean) / std
        pct = ((cost - mean) / mean) * 100
    flagged = eligible & (z > Z_THRESHOLD) & (pct > MIN_PCT_INCREASE)
    out = merged.loc[flagged].copy()
    out["usage_date"] = day
    out["impact"] = out["actual_cost"] - out["expected_cost"]
    out["pct_change"] = pct[flagged]
    out["score"] = z[flagged]
    out["kind"] = "spike"
    out["method"] = "seed"
    out = out.sort_values("pct_change", ascending=False, kind="stable")
    return anomaly_frame(out)
