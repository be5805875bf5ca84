"""Data-quality rules behind the assets' checks: pure functions, so they are tested alone.

Each returns (passed, metadata); the assets turn them into Dagster asset check results, shown
next to the data in the UI. The anomalies check is blocking: bad rows must not reach Slack.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

KINDS = {"spike", "sustained", "level_shift", "new_spend", "drop"}
SHRINK_RATIO = 0.5  # a day under half the day before usually means missing accounts or services
MIN_COVERAGE = 0.5


def raw_days_complete(frames: Mapping[date, pd.DataFrame],
                      day_before_total: float | None) -> tuple[bool, dict[str, Any]]:
    """Every day has costs, and no day's total is under half the previous day's."""
    empty, shrunk = [], []
    previous = day_before_total
    for day in sorted(frames):
        rows = frames[day]
        total = float(rows["cost"].sum()) if len(rows) else 0.0
        if len(rows) == 0:
            empty.append(str(day))
        elif previous and previous > 0 and total < SHRINK_RATIO * previous:
            shrunk.append(f"{day} ({total:,.2f} vs {previous:,.2f})")
        previous = total
    return not empty and not shrunk, {
        "days_without_costs": ", ".join(empty) or "none",
        "days_under_half_the_day_before": ", ".join(shrunk) or "none",
    }


def baseline_coverage(frames: Mapping[date, pd.DataFrame]) -> tuple[bool, dict[str, Any]]:
    """Share of series with a week of history on the last day: low means baselines are guesses."""
    last = frames[max(frames)]
    share = float((last["history_days"] >= 7).mean()) if len(last) else 0.0
    return share >= MIN_COVERAGE, {"share_with_7_days_history": round(share, 4),
                                   "series": len(last)}


def anomalies_consistent(frames: Mapping[date, pd.DataFrame]) -> tuple[bool, dict[str, Any]]:
    """Rows agree with themselves: impact = actual - expected, known kinds, finite scores,
    episodes that start on or before their day."""
    problems: list[str] = []
    for day, rows in sorted(frames.items()):
        if len(rows) == 0:
            continue
        impact = rows["actual_cost"] - rows["expected_cost"]
        if not np.allclose(rows["impact"], impact, rtol=1e-9, atol=1e-6):
            problems.append(f"{day}: impact != actual - expected")
        if not set(rows["kind"]) <= KINDS:
            problems.append(f"{day}: unknown kind {sorted(set(rows['kind']) - KINDS)}")
        if not np.isfinite(rows["score"].to_numpy(dtype=float)).all():
            problems.append(f"{day}: score is not finite")
        starts = pd.to_datetime(rows["anomaly_start"]).dt.date
        if (starts > pd.to_datetime(rows["usage_date"]).dt.date).any():
            problems.append(f"{day}: anomaly_start after usage_date")
    return not problems, {"problems": "; ".join(problems[:10]) or "none"}
