"""Sentinel's scoring rules on baselines that know more than a detector can: two ceilings.

Why: the shipped detector's shortfall on this benchmark has parts, the rules (threshold, $ and %
bars, drift, episodes), the estimates the rules are fed (expected cost, noise), and the history
those estimates learn from (a third of year 2 is anomalous). Two rows measure them:

- ``true_baselines``: the generator's own noise-free cost and noise, in the ``cost_baselines``
  contract. No estimate of the level or the noise can take the shipped rules past this row.
- ``observed_episodes``: for baselines learned from the series without their events (the
  clean-history row), the open episode before each day counted on the costs as observed, as a
  real run counts it. Learned from the clean costs alone, the run of elevated days and the
  episode's money to date never saw an event, and the row understated a clean history.

Not detectors: they read the answer.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from benchmarks.public.generator import Cell
from sentinel_pipeline.detection import DetectionConfig
from sentinel_pipeline.detection.robust import LEVEL_ERROR, RUN_DAYS


def true_noise(cell: Cell) -> float:
    """The sd of the log residual on the cell's normal days (the generator's noise, as the
    detector measures noise: in log space)."""
    normal = ~cell.is_anomaly
    return float(np.std(np.log(cell.cost[normal] / cell.expected[normal])))


def episode_state(cost: np.ndarray, expected: np.ndarray,
                  log_sd: np.ndarray | float) -> tuple[np.ndarray, ...]:
    """Per day i: the run of days in a row before it whose cost was above expected by one log
    noise sd or more (at most RUN_DAYS, as the robust baselines count it), and the actual and
    expected $ over that run (the episode's money so far)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        above = (cost > expected) & (np.log(cost / expected) >= log_sd)
    run = np.zeros(len(cost), dtype=np.int64)
    actual_sum = np.zeros(len(cost))
    expected_sum = np.zeros(len(cost))
    for i in range(1, len(cost)):
        if above[i - 1]:
            run[i] = min(run[i - 1] + 1, RUN_DAYS)
            first = i - run[i]
            actual_sum[i] = cost[first:i].sum()
            expected_sum[i] = expected[first:i].sum()
    return run, actual_sum, expected_sum


def true_baselines(cells: list[Cell], days: list[date], config: DetectionConfig) -> pd.DataFrame:
    """``cost_baselines`` rows of ``days`` whose expected cost is the generator's noise-free
    cost and whose noise is known exactly (no degrees of freedom to pay for, no level error:
    the scale is divided by the LEVEL_ERROR _z multiplies it by). The drift statistics start
    at 0 and are carried from day to day by the scoring walk."""
    parts = []
    for cell in cells:
        sd = true_noise(cell)
        index = np.array([(day - cell.dates[0]).days for day in days])
        run, actual_sum, expected_sum = episode_state(cell.cost, cell.expected, sd)
        expected = cell.expected[index]
        band = np.exp(config.score_threshold * sd)
        parts.append(pd.DataFrame({
            "usage_date": days,
            "service": cell.name,
            "account_id": "benchmark",
            "region": "global",
            "owner": "",
            "expected_cost": expected,
            "lower": expected / band,
            "upper": expected * band,
            "scale": expected * sd,
            "history_days": index,
            "elevated_days": run[index],
            "log_scale": sd / LEVEL_ERROR,
            "noise_df": np.nan,
            "prior_actual": actual_sum[index],
            "prior_expected": expected_sum[index],
            "cusum": 0.0,
            "cusum_large": 0.0,
            "autocorr": 0.0,
            "episode_days_left_out": 0,
            "method": "robust",
        }))
    return pd.concat(parts, ignore_index=True)


def observed_episodes(baselines: pd.DataFrame, cells: list[Cell]) -> pd.DataFrame:
    """``baselines`` (one row per cell and day) with each day's open episode counted on the
    cells' observed costs against the baselines' own expected cost and noise of each day."""
    out = []
    for cell in cells:
        rows = baselines[baselines["service"] == cell.name].sort_values("usage_date").copy()
        index = np.array([(day - cell.dates[0]).days for day in rows["usage_date"]])
        expected = np.full(len(cell.cost), np.nan)
        log_sd = np.full(len(cell.cost), np.nan)
        expected[index] = rows["expected_cost"].to_numpy(dtype=float)
        log_sd[index] = rows["log_scale"].to_numpy(dtype=float) * LEVEL_ERROR
        run, actual_sum, expected_sum = episode_state(cell.cost, expected, log_sd)
        rows["elevated_days"] = run[index]
        rows["prior_actual"] = actual_sum[index]
        rows["prior_expected"] = expected_sum[index]
        out.append(rows)
    return pd.concat(out, ignore_index=True)
