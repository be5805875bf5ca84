"""The default detector: robust, seasonal baselines that a FinOps engineer can trust.

Why each piece is there:
- Medians, not means, so one spike does not raise the baseline of the following days.
- A weekday profile (median of each weekday over the lookback) so quiet weekends and busy
  Mondays are expected, not alerted.
- A scale from the median absolute deviation of recent residuals, floored at a share of the
  expected cost, so noisy services need a bigger surprise and flat ones do not alert on cents.
- Last month's same day of month, when it was itself a charge well above normal, is taken as
  the expectation: monthly fees (support, tax, reservations) recur and are not news.
- Both size ($ impact) and surprise (score) must pass, so tiny series never alert.
"""

from __future__ import annotations

import calendar
import warnings
from datetime import date, timedelta

import numpy as np
import pandas as pd

from sentinel_pipeline.detection.config import DetectionConfig
from sentinel_pipeline.detection.frames import anomaly_frame, baseline_frame, day_costs, to_matrix
from sentinel_pipeline.schema import SERIES_KEY

LEVEL_DAYS = 14
RESIDUAL_DAYS = 28
MAD_TO_SIGMA = 1.4826
RELATIVE_SCALE_FLOOR = 0.05  # a day within 5 % of expected is never surprising
ABSOLUTE_SCALE_FLOOR = 0.01  # dollars: keeps scores finite on all-zero history
MIN_WEEKS_FOR_PROFILE = 2
YOUNG_DAYS = 14  # a series younger than this has no known weekly shape yet
YOUNG_SCALE_FLOOR = 0.25  # so its normal weekday swings are not alerts
WARM_HISTORY_DAYS = 35  # "new" needs a full billing month seen, or monthly fees look new


def _same_day_last_month(day: date) -> date:
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(day.day, last))


def _nanmedian(values: np.ndarray) -> np.ndarray:
    """Row medians ignoring NaN; all-NaN rows give NaN without a warning."""
    if values.shape[0] == 0 or values.shape[1] == 0:
        return np.full(values.shape[0], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=1)


def compute_baselines(history: pd.DataFrame, day: date, config: DetectionConfig) -> pd.DataFrame:
    """Seasonal median baseline and robust scale per series, from the lookback before ``day``."""
    first = day - timedelta(days=config.lookback_days)
    matrix = to_matrix(history, first, day - timedelta(days=1))
    values = matrix.values
    n_series, n_days = values.shape
    weekdays = np.array([d.weekday() for d in matrix.days])

    # Days before a series first appeared are unknown, not zero: a young series is judged on
    # the days it has existed, so a new service does not look like a spike on its second day.
    seen = matrix.present.cumsum(axis=1) > 0
    active = np.where(seen, values, np.nan)

    # Weekday profile: median cost on each weekday, normalised to average 1.
    profile = np.stack(
        [_nanmedian(active[:, weekdays == w]) for w in range(7)], axis=1
    ) if n_series else np.zeros((0, 7))
    profile = np.nan_to_num(profile, nan=0.0)
    mean_profile = profile.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(mean_profile > 0, profile / mean_profile, 1.0)
    factor = np.clip(np.nan_to_num(factor, nan=1.0), 0.2, 5.0)
    # A weekday profile needs at least two weeks of a series' life to mean anything.
    weeks_seen = np.stack([seen[:, weekdays == w].sum(axis=1) for w in range(7)], axis=1)
    factor[weeks_seen.min(axis=1) < MIN_WEEKS_FOR_PROFILE] = 1.0
    col_factor = factor[:, weekdays]  # (series, day)

    # Level: median of the recent days once the weekday effect is taken out.
    recent = slice(max(n_days - LEVEL_DAYS, 0), n_days)
    level = np.nan_to_num(_nanmedian(active[:, recent] / col_factor[:, recent]), nan=0.0)
    expected = level * factor[:, day.weekday()] if n_series else np.zeros(0)

    # Scale: MAD of the recent residuals against the same model.
    res_cols = slice(max(n_days - RESIDUAL_DAYS, 0), n_days)
    residuals = active[:, res_cols] - level[:, None] * col_factor[:, res_cols]
    centred = residuals - _nanmedian(residuals)[:, None]
    scale = np.nan_to_num(MAD_TO_SIGMA * _nanmedian(np.abs(centred)), nan=0.0)

    # Monthly recurring charges: last month's same day, when it stood out, is what we expect.
    ref_day = _same_day_last_month(day)
    if first <= ref_day < day and n_series:
        ref = values[:, (ref_day - first).days]
        recurring = ref > expected + 3 * np.maximum(scale, RELATIVE_SCALE_FLOOR * np.abs(expected))
        expected = np.where(recurring, ref, expected)
        scale = np.where(recurring, np.maximum(scale, 0.1 * np.abs(ref)), scale)

    age = seen.sum(axis=1)
    floor = np.where(age < YOUNG_DAYS, YOUNG_SCALE_FLOOR, RELATIVE_SCALE_FLOOR)
    scale = np.maximum(scale, floor * np.abs(expected))
    scale = np.maximum(scale, ABSOLUTE_SCALE_FLOOR)
    history_days = age
    return baseline_frame(
        matrix.keys, day, expected, scale, config.score_threshold, history_days, "robust"
    )


def score_anomalies(
    actual: pd.DataFrame, baselines: pd.DataFrame, day: date, config: DetectionConfig
) -> pd.DataFrame:
    """Spikes, new spend and drops of ``day`` that pass both the $ and the score thresholds."""
    today = day_costs(actual, day)
    base = baselines.astype({k: "string" for k in SERIES_KEY}) if len(baselines) else None
    if base is None:
        merged = today.assign(expected_cost=0.0, lower=0.0, upper=0.0, scale=np.nan,
                              history_days=0)
    else:
        today = today.astype({k: "string" for k in SERIES_KEY})
        merged = today.merge(base.drop(columns=["usage_date", "method"]), on=SERIES_KEY,
                             how="outer")
    if len(merged) == 0:
        return anomaly_frame(pd.DataFrame())
    merged["actual_cost"] = merged["actual_cost"].fillna(0.0)
    merged["expected_cost"] = merged["expected_cost"].fillna(0.0)
    merged["history_days"] = merged["history_days"].fillna(0)
    merged["currency"] = merged["currency"].fillna("USD")

    actual_cost = merged["actual_cost"].to_numpy(dtype=float)
    expected = merged["expected_cost"].to_numpy(dtype=float)
    scale = merged["scale"].to_numpy(dtype=float)
    impact = actual_cost - expected
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(expected > 0, impact / expected * 100.0, np.nan)
        score = impact / scale

    history_days = merged["history_days"].to_numpy()
    is_new = history_days == 0
    # With no history at all (the first days of a table) nothing can be called new.
    warm = base is not None and int(base["history_days"].max()) >= WARM_HISTORY_DAYS
    # A new series has no spread to compare with: its score says how far past the $ bar it is.
    new_score = impact / max(config.min_impact, ABSOLUTE_SCALE_FLOOR) * config.score_threshold
    score = np.where(is_new, new_score, score)
    big_enough = np.abs(impact) >= config.min_impact
    pct_ok = np.isnan(pct) | (np.abs(pct) >= config.min_pct_change)
    surprising = np.abs(score) >= config.score_threshold

    kind = np.full(len(merged), "", dtype=object)
    up = big_enough & pct_ok & surprising & (impact > 0)
    kind[up & is_new & warm] = "new_spend"
    kind[up & ~is_new] = "spike"
    down = big_enough & pct_ok & surprising & (impact < 0) & (history_days >= YOUNG_DAYS)
    kind[down] = "drop"

    merged["usage_date"] = day
    merged["impact"] = impact
    merged["pct_change"] = pct
    merged["score"] = score
    merged["kind"] = kind
    merged["method"] = "robust"
    merged["lower"] = merged["lower"].fillna(0.0)
    merged["upper"] = merged["upper"].fillna(0.0)
    out = merged[kind != ""].sort_values("impact", ascending=False, kind="stable")
    return anomaly_frame(out)
