"""The two simple baselines of the public benchmark, re-implemented from its description
(github.com/seoyoungleeme/finops-cost-anomaly-benchmark, commit df55842, MIT licence,
``finops_benchmark/models.py``): they exist here to prove our data and metrics match the
published run, since their published F1 must come out again.

Both return one score per day (larger = more anomalous; NaN where the model has none).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAD_TO_SIGMA = 1.4826


def ewma_scores(cost: np.ndarray, year2_start: int, span: int = 14, std_window: int = 30,
                eps: float = 1e-6) -> np.ndarray:
    """|z| of each day against an exponentially weighted mean (span 14, recursive form:
    mean_t = (1 - a) mean_{t-1} + a cost_t, a = 2 / (span + 1), the day itself included), scaled
    by the 30-day rolling sample std of the residuals; before 30 residuals exist, by the
    population std of the year-1 residuals."""
    y = np.asarray(cost, dtype=float)
    mean = pd.Series(y).ewm(span=span, adjust=False).mean().to_numpy()
    residual = y - mean
    sigma = pd.Series(residual).rolling(std_window, min_periods=std_window).std().to_numpy()
    sigma = np.where(np.isnan(sigma), float(np.nanstd(residual[:year2_start])), sigma)
    sigma = np.maximum(sigma, eps)
    return np.abs(residual / sigma)


def seasonal_naive_mad_scores(cost: np.ndarray, lag: int = 7, weeks: int = 8,
                              min_history: int = 3, fallback_days: int = 28,
                              eps: float = 1e-6) -> np.ndarray:
    """|cost - median| / (1.4826 MAD) over the same weekday of the 8 weeks before (those that
    exist); with fewer than 3 of them, over the 28 days before; no score with fewer than 3 days.
    A zero MAD falls back to the population std of that history (+ eps)."""
    y = np.asarray(cost, dtype=float)
    n = len(y)
    out = np.full(n, np.nan)
    # Days with >= min_history same-weekday lags: one vectorised pass, NaN for missing lags.
    first = lag * min_history
    if n > first:
        t = np.arange(first, n)
        idx = t[:, None] - lag * np.arange(1, weeks + 1)[None, :]
        hist = np.where(idx >= 0, y[np.clip(idx, 0, None)], np.nan)
        _score_rows(y[t], hist, out, t, eps)
    for day in range(min(first, n)):  # the first weeks: the 28-day fallback window
        window = y[max(0, day - fallback_days):day]
        if len(window) >= min_history:
            _score_rows(y[[day]], window[None, :], out, np.array([day]), eps)
    return out


def _score_rows(today: np.ndarray, hist: np.ndarray, out: np.ndarray, rows: np.ndarray,
                eps: float) -> None:
    med = np.nanmedian(hist, axis=1)
    scale = MAD_TO_SIGMA * np.nanmedian(np.abs(hist - med[:, None]), axis=1)
    small = scale < eps
    if small.any():
        scale[small] = np.nanstd(hist[small], axis=1) + eps
    out[rows] = np.abs(today - med) / scale
