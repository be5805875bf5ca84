"""The reference rule of the blog seed, reproduced exactly, vectorised over all series.

For day D: look at the 30 days ending on D (days without spend have no row). A series needs at
least 8 rows there, one of them on D. Its history is its 7 latest rows before D. Skip it when D's
cost is under $1, or the history's mean or sample standard deviation is 0. Flag it when
z = (cost - mean) / std > 2.0 and the increase over the mean > 50 %. Sort by % increase.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from sentinel_pipeline.detection.config import DetectionConfig
from sentinel_pipeline.detection.frames import CostMatrix, baseline_frame

WINDOW_DAYS = 30
HISTORY_ROWS = 7
Z_THRESHOLD = 2.0
MIN_PCT_INCREASE = 50.0
MIN_DAY_COST = 1.0


# How a day's anomalies are listed: the blog's order, largest % increase first.
ANOMALY_ORDER = ("pct_change", False)


def history_days(config: DetectionConfig) -> int:
    """Days before D the rule looks at: the 30-day window ends on D itself."""
    return WINDOW_DAYS - 1


def baselines_from_matrix(matrix: CostMatrix, day: date, config: DetectionConfig) -> pd.DataFrame:
    """Mean and sample std of each series' 7 latest rows in the 29 days before ``day``."""
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
    return baseline_frame(matrix.keys, day, {
        "expected_cost": mean,
        "lower": mean - Z_THRESHOLD * std,
        "upper": mean + Z_THRESHOLD * std,
        "scale": std,
        "history_days": count,
    }, "seed")


def score(merged: pd.DataFrame, config: DetectionConfig,
          previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """Score every (day, series); those with a full 7-row history that pass the seed rule are
    flagged (kind "spike"), the rest have kind ""."""
    has_baseline = merged["history_days"].notna().to_numpy()
    cost = merged["actual_cost"].to_numpy(dtype=float)
    mean = merged["expected_cost"].to_numpy(dtype=float)
    std = merged["scale"].to_numpy(dtype=float)
    rows_before = merged["history_days"].fillna(0).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        # cost >= $1 also means D has a row: days without spend have actual 0 here.
        eligible = (has_baseline & (rows_before >= HISTORY_ROWS)
                    & (cost >= MIN_DAY_COST) & (mean != 0) & (std != 0) & np.isfinite(std))
        z = (cost - mean) / std
        pct = ((cost - mean) / mean) * 100
    flagged = eligible & (z > Z_THRESHOLD) & (pct > MIN_PCT_INCREASE)
    out = merged.copy()
    out["impact"] = out["actual_cost"] - out["expected_cost"]
    out["pct_change"] = pct
    out["score"] = z
    out["kind"] = np.where(flagged, "spike", "")
    out["method"] = "seed"
    out["anomaly_start"] = out["usage_date"]
    out["alert"] = flagged
    return out
