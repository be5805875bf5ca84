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
from sentinel_pipeline.detection.frames import CostMatrix, baseline_frame, usage_days
from sentinel_pipeline.schema import SERIES_KEY

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
    first_seen = np.where(present.any(axis=1), present.argmax(axis=1), n_days)
    age = n_days - first_seen
    columns = np.arange(n_days)

    # Weekday profile: each day's cost as a share of its week's mean, median per weekday.
    # Shares, not costs, so a level shift or a trend inside the window does not bend the profile.
    weeks = n_days // 7
    offset = n_days - weeks * 7
    block_seen = (columns[offset:] >= first_seen[:, None]).reshape(len(values), weeks, 7)
    block = values[:, offset:].reshape(len(values), weeks, 7)
    with np.errstate(invalid="ignore", divide="ignore"):
        week_mean = block.sum(axis=2) / block_seen.sum(axis=2)
        share = np.where(block_seen & (week_mean[:, :, None] > 0),
                         block / week_mean[:, :, None], np.nan)
    profile = np.ones((len(values), 7))
    for j, w in enumerate(weekdays[offset:offset + 7] if weeks else []):
        profile[:, w] = _median(share[:, :, j])
    profile = np.nan_to_num(profile, nan=1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = profile / profile.mean(axis=1, keepdims=True)
    factor = np.clip(np.nan_to_num(factor, nan=1.0), 0.2, 5.0)
    weeks_seen = block_seen.all(axis=2).sum(axis=1) if weeks else np.zeros(len(values))
    factor[weeks_seen < MIN_WEEKS_FOR_PROFILE] = 1.0

    # The recent days, where level, scale and the run before the day are measured.
    recent = max(n_days - RESIDUAL_DAYS, 0)
    seen_r = columns[recent:] >= first_seen[:, None]
    active_r = np.where(seen_r, values[:, recent:], np.nan)
    factor_r = factor[:, weekdays[recent:]]

    # Level: median of the last days with the weekday effect taken out.
    level_cols = min(LEVEL_DAYS, n_days - recent)
    level = np.nan_to_num(
        _median(active_r[:, -level_cols:] / factor_r[:, -level_cols:]) if level_cols
        else np.full(len(values), np.nan), nan=0.0)
    expected = level * factor[:, day.weekday()]
    model_r = level[:, None] * factor_r

    # Scale: MAD of the recent residuals against the same model.
    residuals = active_r - model_r
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

    floor = np.where(age < YOUNG_DAYS, YOUNG_SCALE_FLOOR, RELATIVE_SCALE_FLOOR)
    scale = np.maximum(np.maximum(scale, floor * np.abs(expected)), _abs_floor(config))

    # The days just before: how many in a row were still elevated against today's model of
    # each weekday (where an episode started), and their excess (for the sustained rule).
    tail = slice(max(model_r.shape[1] - RUN_DAYS, 0), None)
    excess = np.where(seen_r[:, tail], values[:, recent:][:, tail] - model_r[:, tail], 0.0)
    expected_past = model_r[:, tail]
    run = _trailing_run(_elevated(excess, expected_past, scale[:, None], config))
    prior = slice(max(excess.shape[1] - (SUSTAINED_DAYS - 1), 0), excess.shape[1])

    return baseline_frame(matrix.keys, day, {
        "expected_cost": expected,
        "lower": expected - thr * scale,
        "upper": expected + thr * scale,
        "scale": scale,
        "history_days": age,
        "elevated_days": run,
        "prior_excess": excess[:, prior].sum(axis=1),
        "prior_expected": expected_past[:, prior].sum(axis=1),
    }, "robust")


def _pct(excess: np.ndarray, expected: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(expected > 0, excess / expected * 100.0, np.inf)


def _material(excess: np.ndarray, expected: np.ndarray, config: DetectionConfig) -> np.ndarray:
    """Big enough to act on: both the $ and the % bar."""
    return (excess >= config.min_impact) & (_pct(excess, expected) >= config.min_pct_change)


def _elevated(excess: np.ndarray, expected: np.ndarray, scale: np.ndarray,
              config: DetectionConfig) -> np.ndarray:
    """Still above normal: half the bars and one robust std dev, so noise inside an episode
    does not end it (and re-alert it the next day)."""
    return ((excess >= 0.5 * config.min_impact) & (excess >= scale)
            & (_pct(excess, expected) >= 0.5 * config.min_pct_change))


def _sustained(excess_sum: np.ndarray, expected_sum: np.ndarray, scale: np.ndarray,
               config: DetectionConfig) -> np.ndarray:
    """SUSTAINED_DAYS together clear the bars a single day would: $ and % per day, and a score
    on their sum (noise of n days grows like sqrt(n))."""
    days = SUSTAINED_DAYS
    with np.errstate(invalid="ignore", divide="ignore"):
        z = excess_sum / (scale * np.sqrt(days))
    return (_material(excess_sum / days, expected_sum / days, config)
            & (z >= config.score_threshold))


def score(merged: pd.DataFrame, config: DetectionConfig,
          previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """Classify each (day, series): spike, sustained, level_shift, new_spend, drop or nothing.

    Days are walked in order so an episode is alerted once: ``previous`` holds the anomalies of
    the day before the first one (from the table), so rerunning a single day knows which
    episodes were already open.
    """
    thr = config.score_threshold
    actual = merged["actual_cost"].to_numpy(dtype=float)
    history = merged["history_days"].fillna(0).to_numpy()
    is_new = history == 0
    expected = np.where(is_new, 0.0, merged["expected_cost"].fillna(0).to_numpy(dtype=float))
    scale = merged["scale"].fillna(_abs_floor(config)).to_numpy(dtype=float)
    run = merged["elevated_days"].fillna(0).to_numpy().astype(np.int64)
    prior_excess = merged["prior_excess"].fillna(0).to_numpy(dtype=float)
    prior_expected = merged["prior_expected"].fillna(0).to_numpy(dtype=float)
    # "New" only means something once the table holds a month of history for that day.
    warm = (merged.groupby("usage_date")["history_days"].transform("max").fillna(0)
            .to_numpy() >= WARM_HISTORY_DAYS)

    impact = actual - expected
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(expected > 0, impact / expected * 100.0, np.nan)
        z = impact / scale
    hard = ~is_new & _material(impact, expected, config) & (z >= thr)
    elevated = ~is_new & _elevated(impact, expected, scale, config)
    sustained = (elevated & (run >= SUSTAINED_DAYS - 1)
                 & _sustained(prior_excess + impact, prior_expected + expected, scale, config))
    new_spend = is_new & warm & (impact >= config.min_impact)
    drop = (~is_new & (history >= YOUNG_DAYS) & (z <= -thr) & (-impact >= config.min_impact)
            & (np.nan_to_num(-pct, nan=np.inf) >= config.min_pct_change))

    days = usage_days(merged)
    continuing, opens, start, opened_as = _walk_episodes(
        merged, previous, days, elevated, hard | sustained, new_spend, run, hard & (run == 0))

    kind = np.full(len(merged), "", dtype=object)
    kind[opens] = np.where(opened_as[opens] == 1, "spike", "sustained")
    kind[continuing] = np.where(opened_as[continuing] == 1, "level_shift", "sustained")
    kind[new_spend] = "new_spend"
    kind[drop & ~continuing & ~opens] = "drop"
    # A new series has no spread to compare with: its score says how far past the $ bar it is.
    new_score = impact / max(config.min_impact, _abs_floor(config)) * thr

    out = merged.copy()
    out["expected_cost"] = expected
    out["impact"] = impact
    out["pct_change"] = pct
    out["score"] = np.where(is_new, new_score, z)
    out["kind"] = kind
    out["method"] = "robust"
    out["lower"] = out["lower"].fillna(0.0)
    out["upper"] = out["upper"].fillna(0.0)
    out["anomaly_start"] = pd.Series(start, index=out.index).dt.date
    out["alert"] = opens | new_spend | ((kind == "drop") & config.alert_on_drops)
    out = out[kind != ""]
    return out.sort_values(["usage_date", "impact"], ascending=[True, False], kind="stable")


OPENED_SPIKE, OPENED_SUSTAINED = 1, 2


def _walk_episodes(
    merged: pd.DataFrame,
    previous: pd.DataFrame | None,
    days: np.ndarray,
    elevated: np.ndarray,
    worthy: np.ndarray,
    new_spend: np.ndarray,
    run: np.ndarray,
    jump: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Day by day (vectorised over series): an elevated day of an open episode continues it; a
    worthy day with no open episode opens one (its start traced back over the elevated run)."""
    keys = merged[SERIES_KEY].astype("string")
    prev = previous if previous is not None and len(previous) else None
    if prev is not None:
        prev = prev[prev["kind"].isin(["spike", "sustained", "level_shift", "new_spend"])]
        keys_all = pd.concat([keys, prev[SERIES_KEY].astype("string")], ignore_index=True)
    else:
        keys_all = keys
    codes_all, _ = pd.MultiIndex.from_frame(keys_all).factorize()
    codes = codes_all[: len(keys)]
    n_codes = int(codes_all.max()) + 1 if len(codes_all) else 0
    open_start = np.full(n_codes, np.datetime64("NaT"), dtype="datetime64[D]")
    open_kind = np.zeros(n_codes, dtype=np.int8)
    if prev is not None:
        prev_codes = codes_all[len(keys):]
        open_start[prev_codes] = pd.to_datetime(prev["anomaly_start"]).to_numpy().astype(
            "datetime64[D]")
        open_kind[prev_codes] = np.where(prev["kind"].isin(["spike", "level_shift"]),
                                         OPENED_SPIKE, OPENED_SUSTAINED)

    n = len(merged)
    continuing = np.zeros(n, dtype=bool)
    opens = np.zeros(n, dtype=bool)
    start = days.copy()
    opened_as = np.zeros(n, dtype=np.int8)
    order = np.argsort(days, kind="stable")
    boundaries = np.flatnonzero(np.diff(days[order].astype(np.int64))) + 1
    for rows in np.split(order, boundaries):
        c = codes[rows]
        is_open = ~np.isnat(open_start[c])
        cont = elevated[rows] & is_open
        new = worthy[rows] & ~cont
        continuing[rows], opens[rows] = cont, new
        start[rows] = np.where(cont, open_start[c],
                               np.where(new, days[rows] - run[rows], days[rows]))
        opened_as[rows] = np.where(cont, open_kind[c],
                                   np.where(jump[rows], OPENED_SPIKE, OPENED_SUSTAINED))
        # Tomorrow, only the episodes alive today are open.
        open_start[:] = np.datetime64("NaT")
        alive = cont | new | new_spend[rows]
        open_start[c[alive]] = start[rows][alive]
        open_kind[c[alive]] = np.where(new_spend[rows][alive], OPENED_SPIKE,
                                       opened_as[rows][alive])
    return continuing, opens, start, opened_as
