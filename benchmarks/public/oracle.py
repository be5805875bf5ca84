"""Sentinel's scoring rules on baselines that know the truth: the ceiling of a perfect baseline.

Why: the shipped detector's shortfall on this benchmark has two parts, the rules (threshold, $
and % bars, drift, episodes) and the estimates the rules are fed (expected cost, noise). Handing
``scores_for_days`` the generator's own noise-free cost and noise, in the ``cost_baselines``
contract, measures what the rules alone can reach: no estimate of the level or the noise can
take the shipped rules past this row. Not a detector: it reads the answer.
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


def true_baselines(cells: list[Cell], days: list[date], config: DetectionConfig) -> pd.DataFrame:
    """``cost_baselines`` rows of ``days`` whose expected cost is the generator's noise-free
    cost and whose noise is known exactly (no degrees of freedom to pay for, no level error:
    the scale is divided by the LEVEL_ERROR _z multiplies it by). The open episode before each
    day (elevated_days, prior_actual, prior_expected) is the run of days above expected by one
    noise sd or more, as the robust baselines count it; the drift statistics start at 0 and are
    carried from day to day by the scoring walk."""
    parts = []
    for cell in cells:
        sd = true_noise(cell)
        index = np.array([(day - cell.dates[0]).days for day in days])
        z = np.log(cell.cost / cell.expected) / sd
        above = (cell.cost > cell.expected) & (z >= 1.0)
        run = np.zeros(len(cell.cost), dtype=np.int64)  # days in a row above, before day i
        actual_sum = np.zeros(len(cell.cost))
        expected_sum = np.zeros(len(cell.cost))
        for i in range(1, len(cell.cost)):
            if above[i - 1]:
                run[i] = min(run[i - 1] + 1, RUN_DAYS)
                first = i - run[i]
                actual_sum[i] = cell.cost[first:i].sum()
                expected_sum[i] = cell.expected[first:i].sum()
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
