"""The default detector: robust, seasonal baselines and episode-aware alerts.

Why each piece is there:
- Medians, not means, so one spike does not raise the baseline of the following days.
- A weekday profile (median of each weekday over the lookback) so quiet weekends and busy
  Mondays are expected, not alerted.
- A scale from the median absolute deviation of recent residuals, floored at a share of the
  expected cost, so noisy services need a bigger surprise and flat ones do not alert on cents.
- Last month's same day of month, when it was itself a charge well above normal, is taken as
  the expectation: monthly fees (support, tax, renewals) recur and are not news.
- Both size ($ impact) and surprise (score) must pass, so tiny series never alert.
- Episodes: consecutive elevated days are one anomaly with a start day. The first day that is
  worth it alerts; later days are recorded (``alert=False``) until the baseline has adapted to
  the new level. An increase too small to alert on one day alerts once it has lasted
  ``SUSTAINED_DAYS`` days at half the score threshold.
"""

from __future__ import annotations

import calendar
from datetime import date

import numpy as np
import pandas as pd

from sentinel_pipeline.detection.config import DetectionConfig
from sentinel_pipeline.detection.frames import CostMatrix, baseline_frame

LEVEL_DAYS = 14
RESIDUAL_DAYS = 28
RUN_DAYS = 14  # how far back an episode is traced
MAD_TO_SIGMA = 1.4826
RELATIVE_SCALE_FLOOR = 0.05  # a day within 5 % of expected is never surprising
MIN_WEEKS_FOR_PROFILE = 3  # with 3 samples a weekday median shrugs off one spike
YOUNG_DAYS = 14  # a series younger than this has no known weekly shape yet
YOUNG_SCALE_FLOOR = 0.25  # so its normal weekday swings are not alerts
WARM_HISTORY_DAYS = 35  # "new" needs a full billing month seen, or monthly fees look new
SUSTAINED_DAYS = 3
SOFT_FRACTION = 0.5  # of score_threshold, for days of a sustained increase
RECURRING_MARGIN = 3.0  # robust std devs a same-day-last-month charge must stand out by


def history_days(config: DetectionConfig) -> int:
    return config.lookback_days


def _abs_floor(config: DetectionConfig) -> float:
    """Smallest scale, in $: tied to min_impact so scaling all costs and it changes nothing."""
    return max(config.min_impact * 0.01, 1e-9)


def _same_day_last_month(day: date) -> date:
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _median(values: np.ndarray) -> np.ndarray:
    """Row medians ignoring NaN (NaN when a row has none), by sorting: fast for short rows."""
    n, width = values.shape
    if width == 0:
        return np.full(n, np.nan)
    ordered = np.sort(values, axis=1)  # NaN sorts last
    count = (~np.isnan(values)).sum(axis=1)
    lo = np.clip((count - 1) // 2, 0, width - 1)
    hi = np.clip(count // 2, 0, width - 1)
    rows = np.arange(n)
    median = (ordered[rows, lo] + ordered[rows, hi]) / 2
    return np.where(count > 0, median, np.nan)


def _trailing_run(flags: np.ndarray) -> np.ndarray:
    """How many of the last columns in a row are True, counting back from the end."""
    if flags.shape[1] == 0:
        return np.zeros(flags.shape[0], dtype=np.int64)
    backwards = flags[:, ::-1]
    return np.where(backwards.all(axis=1), flags.shape[1], backwards.argmin(axis=1))


def baselines_from_matrix(matrix: CostMatrix, day: date, config: DetectionConfig) -> pd.DataFrame:
    """Seasonal median baseline, robust scale and the elevated run before ``day``."""
    values, present = matrix.values, matrix.present
    n_days = values.shape[1]
    weekdays = (matrix.day_numbers().astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    thr = config.score_threshold

    # Days before a series first appeared are unknown, not zero: a young series is judged on
    # the days it has existed, so a new service does not look like a spike on its second day.
    seen = np.cumsum(present, axis=1) > 0
    active = np.where(seen, values, np.nan)

    # Weekday profile: median cost of each weekday, normalised to average 1.
    profile = np.nan_to_num(np.stack(
        [_median(active[:, weekdays == w]) for w in range(7)], axis=1), nan=0.0)
    mean_profile = profile.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(mean_profile > 0, profile / mean_profile, 1.0)
    factor = np.clip(np.nan_to_num(factor, nan=1.0), 0.2, 5.0)
    weeks_seen = np.stack([seen[:, weekdays == w].sum(axis=1) for w in range(7)], axis=1)
    factor[weeks_seen.min(axis=1) < MIN_WEEKS_FOR_PROFILE] = 1.0
    col_factor = factor[:, weekdays]

    # Level: median of the recent days with the weekday effect taken out.
    recent = slice(max(n_days - LEVEL_DAYS, 0), n_days)
    level = np.nan_to_num(_median(active[:, recent] / col_factor[:, recent]), nan=0.0)
    expected = level * factor[:, day.weekday()]
    model = level[:, None] * col_factor

    # Scale: MAD of the recent residuals against the same model.
    res = slice(max(n_days - RESIDUAL_DAYS, 0), n_days)
    residuals = active[:, res] - model[:, res]
    spread = np.abs(residuals - _median(residuals)[:, None])
    scale = np.nan_to_num(MAD_TO_SIGMA * _median(spread), nan=0.0)

    # Monthly recurring charges: last month's same day is what we expect when it stood out and
    # is known to recur: the series bills only on such days, or did the month before too.
    # (A one-off spike last month must not hide a spike, or fake a drop, this month.)
    margin = RECURRING_MARGIN * np.maximum(scale, RELATIVE_SCALE_FLOOR * np.abs(expected))
    last_month = _same_day_last_month(day)
    col = (last_month - matrix.first).days
    col2 = (_same_day_last_month(last_month) - matrix.first).days
    if 0 <= col < n_days:
        ref = values[:, col]
        stood_out = present[:, col] & (ref > expected + margin)
        confirmed = (present[:, col2] & (values[:, col2] > expected + margin)
                     if col2 >= 0 else np.zeros(len(ref), dtype=bool))
        recurring = stood_out & ((level == 0) | confirmed)
        expected = np.where(recurring, ref, expected)
        scale = np.where(recurring, np.maximum(scale, 0.1 * np.abs(ref)), scale)

    age = seen.sum(axis=1)
    floor = np.where(age < YOUNG_DAYS, YOUNG_SCALE_FLOOR, RELATIVE_SCALE_FLOOR)
    scale = np.maximum(np.maximum(scale, floor * np.abs(expected)), _abs_floor(config))

    # The elevated run just before the day, judged against today's model of each weekday.
    tail = slice(max(n_days - RUN_DAYS, 0), n_days)
    excess = values[:, tail] - model[:, tail]
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(model[:, tail] > 0, excess / model[:, tail] * 100, np.inf)
    soft = (seen[:, tail] & (excess >= config.min_impact) & (pct >= config.min_pct_change)
            & (excess >= SOFT_FRACTION * thr * scale[:, None]))
    hard = soft & (excess >= thr * scale[:, None])
    run = _trailing_run(soft)
    in_run = np.arange(soft.shape[1])[::-1][None, :] < run[:, None]
    hard_in_run = (hard & in_run).any(axis=1)

    return baseline_frame(matrix.keys, day, {
        "expected_cost": expected,
        "lower": expected - thr * scale,
        "upper": expected + thr * scale,
        "scale": scale,
        "history_days": age,
        "elevated_days": run,
        "elevated_hard": hard_in_run,
    }, "robust")


def score(merged: pd.DataFrame, config: DetectionConfig) -> pd.DataFrame:
    """Classify each (day, series): spike, sustained, level_shift, new_spend, drop or nothing."""
    thr = config.score_threshold
    actual = merged["actual_cost"].to_numpy(dtype=float)
    history = merged["history_days"].fillna(0).to_numpy()
    is_new = history == 0
    expected = np.where(is_new, 0.0, merged["expected_cost"].fillna(0).to_numpy(dtype=float))
    scale = merged["scale"].fillna(_abs_floor(config)).to_numpy(dtype=float)
    run = merged["elevated_days"].fillna(0).to_numpy().astype(np.int64)
    hard_before = merged["elevated_hard"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    # "New" only means something once the table holds a month of history for that day.
    warm = (merged.groupby("usage_date")["history_days"].transform("max").fillna(0)
            .to_numpy() >= WARM_HISTORY_DAYS)

    impact = actual - expected
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(expected > 0, impact / expected * 100.0, np.nan)
        z = impact / scale
    material = (np.abs(impact) >= config.min_impact) & (
        np.isnan(pct) | (np.abs(pct) >= config.min_pct_change))
    hard = ~is_new & material & (impact > 0) & (z >= thr)
    soft = ~is_new & material & (impact > 0) & (z >= SOFT_FRACTION * thr)
    worthy_before = (run >= 1) & (hard_before | (run >= SUSTAINED_DAYS))
    continuing = soft & worthy_before
    opens = ~continuing & (hard | (soft & (run + 1 >= SUSTAINED_DAYS)))
    new_spend = is_new & warm & (impact >= config.min_impact)
    drop = (~is_new & (history >= YOUNG_DAYS) & material & (impact < 0) & (z <= -thr))

    kind = np.full(len(merged), "", dtype=object)
    kind[opens & hard & (run == 0)] = "spike"
    kind[opens & ~(hard & (run == 0))] = "sustained"
    kind[continuing] = np.where(hard_before[continuing], "level_shift", "sustained")
    kind[new_spend] = "new_spend"
    kind[drop] = "drop"
    # A new series has no spread to compare with: its score says how far past the $ bar it is.
    new_score = impact / max(config.min_impact, _abs_floor(config)) * thr
    started = np.where(continuing | (opens & (run > 0)), run, 0)

    out = merged.copy()
    out["expected_cost"] = expected
    out["impact"] = impact
    out["pct_change"] = pct
    out["score"] = np.where(is_new, new_score, z)
    out["kind"] = kind
    out["method"] = "robust"
    out["lower"] = out["lower"].fillna(0.0)
    out["upper"] = out["upper"].fillna(0.0)
    out["anomaly_start"] = (pd.to_datetime(out["usage_date"])
                            - pd.to_timedelta(started, unit="D")).dt.date
    out["alert"] = opens | new_spend | (drop & config.alert_on_drops)
    out = out[kind != ""]
    return out.sort_values(["usage_date", "impact"], ascending=[True, False], kind="stable")


