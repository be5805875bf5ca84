"""The default detector: robust, seasonal baselines and episode-aware alerts.

Why each piece is there:
- Medians, not means, so one spike does not raise the baseline of the following days.
- A weekday profile from each day's share of its own week, so quiet weekends and busy Mondays
  are expected, and a level shift or trend inside the lookback does not bend the profile.
- Noise measured in log space (cost noise is multiplicative), from each day's residual against
  its own week and weekday: noisy services need a bigger jump, flat ones do not alert on cents,
  and a level change in the window does not inflate the noise.
- The expected cost is the higher of the recent level (last 14 days) and the lookback's level,
  so the return to normal after a drop or a pause is not news.
- A charge that stood out on the same day of last month, and is known to recur (the series
  bills only on such days, or did the month before too), is expected again on top of normal.
- Both size ($ impact, % change) and surprise (score) must pass, so tiny series never alert.
- Episodes: consecutive elevated days are one anomaly with a start day. The first day worth it
  alerts; later days are recorded (``alert=False``) until the baseline has adapted, unless the
  episode doubles its impact. An increase too small to alert on one day alerts once it has lasted
  ``SUSTAINED_DAYS`` days. Drops are episodes too.
"""

from __future__ import annotations

import calendar
from datetime import date

import numpy as np
import pandas as pd

from sentinel_pipeline.detection.config import DetectionConfig
from sentinel_pipeline.detection.frames import CostMatrix, baseline_frame, usage_days
from sentinel_pipeline.schema import SERIES_KEY, UP_KINDS

LEVEL_DAYS = 14
RESIDUAL_DAYS = 28
RUN_DAYS = 14  # how far back an episode is traced
MAD_TO_SIGMA = 1.4826
WEEK_MEAN_CORRECTION = 1.08  # a day's residual against a mean it is part of is ~sqrt(6/7) short
RELATIVE_SCALE_FLOOR = 0.05  # a day within 5 % of expected is never surprising
MIN_WEEKS_FOR_PROFILE = 3  # with 3 samples a weekday median shrugs off one spike
MIN_LOG_RESIDUALS = 14
YOUNG_DAYS = 14  # a series younger than this has no known weekly shape yet
YOUNG_SCALE_FLOOR = 0.25  # so its normal weekday swings are not alerts
WARM_HISTORY_DAYS = 35  # "new" needs a full billing month seen, or monthly fees look new
SUSTAINED_DAYS = 3
RECURRING_MARGIN = 3.0  # robust std devs a same-day-last-month charge must stand out by
REALERT_FACTOR = 2.0  # an open episode alerts again when its impact doubles


def history_days(config: DetectionConfig) -> int:
    return config.lookback_days


def _abs_floor(config: DetectionConfig) -> float:
    """Smallest scale, in $: tied to min_impact so scaling all costs and it changes nothing."""
    return max(config.min_impact * 0.01, 1e-9)


def _same_day_last_month(day: date) -> date:
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _median(values: np.ndarray, scratch: bool = False) -> np.ndarray:
    """Row medians ignoring NaN (NaN when a row has none).

    Rows without NaN (most series) take np.partition, linear in the row length; the rest are
    sorted, NaN last, and read at their own middle. ``scratch``: the caller no longer needs
    ``values``, so it is partitioned in place instead of copied (it is the hot path at scale).
    """
    n, width = values.shape
    out = np.full(n, np.nan)
    if width == 0 or n == 0:
        return out
    gaps = np.isnan(values).any(axis=1)
    lo, hi = (width - 1) // 2, width // 2
    if not gaps.any():
        part = values if scratch else values.copy()
        part.partition([lo, hi], axis=1)
        return (part[:, lo] + part[:, hi]) / 2
    full = ~gaps
    if full.any():
        part = values[full]
        part.partition([lo, hi], axis=1)
        out[full] = (part[:, lo] + part[:, hi]) / 2
    ordered = np.sort(values[gaps], axis=1)  # NaN sorts last
    count = width - np.isnan(ordered).sum(axis=1)
    lo_i = np.clip((count - 1) // 2, 0, width - 1)
    hi_i = np.clip(count // 2, 0, width - 1)
    rows = np.arange(len(ordered))
    median = (ordered[rows, lo_i] + ordered[rows, hi_i]) / 2
    out[gaps] = np.where(count > 0, median, np.nan)
    return out


def _trailing_run(flags: np.ndarray) -> np.ndarray:
    """How many of the last columns in a row are True, counting back from the end."""
    if flags.shape[1] == 0:
        return np.zeros(flags.shape[0], dtype=np.int64)
    backwards = flags[:, ::-1]
    return np.where(backwards.all(axis=1), flags.shape[1], backwards.argmin(axis=1))


def _log_ratio(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """ln(actual / expected) where both are positive, else NaN."""
    ok = (actual > 0) & (expected > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, np.log(np.where(ok, actual, 1.0) / np.where(ok, expected, 1.0)),
                        np.nan)


def baselines_from_matrix(matrix: CostMatrix, day: date, config: DetectionConfig) -> pd.DataFrame:
    """Seasonal median baseline, noise scale and the elevated run before ``day``."""
    # float32 for the series x day work: cost data has no 8 significant digits to lose, and at a
    # million series halving the bytes moved is what makes it fast.
    values, present = matrix.values.astype(np.float32), matrix.present
    n_series, n_days = values.shape
    weekdays = (matrix.day_numbers().astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    thr = config.score_threshold

    # Days before a series first appeared are unknown, not zero: a young series is judged on
    # the days it has existed, so a new service does not look like a spike on its second day.
    first_seen = np.where(present.any(axis=1), present.argmax(axis=1), n_days)
    age = n_days - first_seen
    columns = np.arange(n_days)

    # Weekday profile: each day's cost as a share of its own week's mean, median per weekday.
    weeks = n_days // 7
    offset = n_days - weeks * 7
    block_seen = (columns[offset:] >= first_seen[:, None]).reshape(n_series, weeks, 7)
    block = values[:, offset:].reshape(n_series, weeks, 7)
    # Sums over the 7 days as 6 additions of (series, weeks) slices: numpy's reduction over a
    # tiny last axis is several times slower at a million series.
    week_sum, week_days = block[:, :, 0].copy(), block_seen[:, :, 0].astype(np.int8)
    for k in range(1, 7):
        week_sum += block[:, :, k]
        week_days += block_seen[:, :, k]
    full_week = week_days == 7
    with np.errstate(invalid="ignore", divide="ignore"):
        week_mean = week_sum / week_days
        share = np.full(block.shape, np.nan, dtype=np.float32)
        np.divide(block, week_mean[:, :, None], out=share,
                  where=block_seen & (week_mean[:, :, None] > 0))
    block_weekdays = weekdays[offset:offset + 7]
    profile = np.ones((n_series, 7))
    by_weekday = np.ascontiguousarray(share.transpose(2, 0, 1))  # one copy, then in place
    for j, w in enumerate(block_weekdays if weeks else []):
        profile[:, w] = _median(by_weekday[j], scratch=True)
    del by_weekday
    profile = np.nan_to_num(profile, nan=1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = profile / profile.mean(axis=1, keepdims=True)
    factor = np.clip(np.nan_to_num(factor, nan=1.0), 0.2, 5.0)
    weeks_seen = full_week.sum(axis=1) if weeks else np.zeros(n_series)
    factor[weeks_seen < MIN_WEEKS_FOR_PROFILE] = 1.0
    factor32 = factor.astype(np.float32)

    # Noise in log space, each day against its own week and weekday (level-shift proof).
    if weeks:
        log_res = share  # the shares are not needed any more: take their logs in place
        with np.errstate(invalid="ignore"):
            log_res[~(log_res > 0)] = np.nan
            np.log(log_res, out=log_res)
        log_res -= np.log(factor32[:, block_weekdays])[:, None, :]
        by_day = log_res.reshape(n_series, weeks * 7)  # a view: still no copy
        counted = (~np.isnan(by_day)).sum(axis=1)
        # Residuals against the week's own mean and weekday share are centred on 0 by
        # construction, so the median absolute residual is the MAD without a second pass.
        np.abs(by_day, out=by_day)
        log_scale = MAD_TO_SIGMA * WEEK_MEAN_CORRECTION * _median(by_day, scratch=True)
        log_scale[counted < MIN_LOG_RESIDUALS] = np.nan
    else:
        log_scale = np.full(n_series, np.nan)

    # Level: median of the last days with the weekday effect taken out; and of the lookback.
    recent = max(n_days - RESIDUAL_DAYS, 0)
    seen_r = columns[recent:] >= first_seen[:, None]
    active_r = np.where(seen_r, values[:, recent:], np.nan)
    factor_r = factor32[:, weekdays[recent:]]
    level_cols = min(LEVEL_DAYS, n_days - recent)
    with np.errstate(invalid="ignore", divide="ignore"):
        level_recent = (_median(active_r[:, -level_cols:] / factor_r[:, -level_cols:])
                        if level_cols else np.full(n_series, np.nan))
    # The lookback's level: the median of its full weeks' means (weeks a series fully lived).
    level_long = (_median(np.where(full_week, week_mean, np.nan)) if weeks
                  else np.full(n_series, np.nan))
    level = np.nan_to_num(np.fmax(level_recent, level_long), nan=0.0)
    level = np.where(np.nan_to_num(level_recent) < 0, np.nan_to_num(level_recent), level)
    expected = level * factor[:, day.weekday()]
    model_r = level.astype(np.float32)[:, None] * factor_r

    floor = np.where(age < YOUNG_DAYS, YOUNG_SCALE_FLOOR, RELATIVE_SCALE_FLOOR)
    log_scale = np.fmax(log_scale, np.log1p(floor))
    has_log = np.isfinite(log_scale) & (expected > 0)

    # Linear scale, for the series whose costs are not all positive (credits, refunds).
    linear_scale = np.zeros(n_series)
    if (~has_log).any():
        rows = ~has_log
        residuals = active_r[rows] - model_r[rows]
        residuals -= _median(residuals)[:, None]
        np.abs(residuals, out=residuals)
        linear_scale[rows] = np.nan_to_num(MAD_TO_SIGMA * _median(residuals, scratch=True),
                                           nan=0.0)
    scale = np.where(has_log, expected * np.expm1(np.nan_to_num(log_scale)), linear_scale)
    scale = np.maximum(np.maximum(scale, floor * np.abs(expected)), _abs_floor(config))

    # Monthly recurring charges, on top of that day's normal cost.
    expected, scale = _recurring(values, present, matrix.first, day, level, factor, weekdays,
                                 expected, scale)

    # The days just before: how many in a row were elevated against today's model of each
    # weekday (where an episode started), and their sums (for the sustained rule).
    tail = slice(max(model_r.shape[1] - RUN_DAYS, 0), None)
    actual_past = np.where(seen_r[:, tail], values[:, recent:][:, tail], 0.0)
    expected_past = model_r[:, tail]
    z_past = _z(actual_past, expected_past, log_scale.astype(np.float32)[:, None],
                scale.astype(np.float32)[:, None])
    run = _trailing_run(seen_r[:, tail] & _elevated(actual_past - expected_past, expected_past,
                                                    z_past, config))
    prior = slice(max(actual_past.shape[1] - (SUSTAINED_DAYS - 1), 0), actual_past.shape[1])

    upper = np.where(has_log, expected * np.exp(thr * np.nan_to_num(log_scale)),
                     expected + thr * scale)
    lower = np.where(has_log, expected * np.exp(-thr * np.nan_to_num(log_scale)),
                     expected - thr * scale)
    return baseline_frame(matrix.keys, day, {
        "expected_cost": expected,
        "lower": lower,
        "upper": upper,
        "scale": scale,
        "log_scale": np.where(has_log, log_scale, np.nan),
        "history_days": age,
        "elevated_days": run,
        "prior_actual": actual_past[:, prior].sum(axis=1),
        "prior_expected": expected_past[:, prior].sum(axis=1),
    }, "robust")


def _recurring(values: np.ndarray, present: np.ndarray, first: date, day: date,
               level: np.ndarray, factor: np.ndarray, weekdays: np.ndarray,
               expected: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expect last month's same-day surcharge again when it is known to recur: the series bills
    only on such days, or it stood out the month before too. Each past day is judged against
    the model of its own weekday, so weekly cycles are not mistaken for monthly charges, and a
    one-off spike last month neither hides a spike nor fakes a drop this month."""
    last_month = _same_day_last_month(day)
    col = (last_month - first).days
    col2 = (_same_day_last_month(last_month) - first).days
    if not 0 <= col < values.shape[1]:
        return expected, scale

    def surcharge(c: int) -> tuple[np.ndarray, np.ndarray]:
        normal = level * factor[:, weekdays[c]]
        extra = values[:, c] - normal
        margin = RECURRING_MARGIN * np.maximum(scale, RELATIVE_SCALE_FLOOR * np.abs(normal))
        return extra, present[:, c] & (extra > margin)

    extra, stood_out = surcharge(col)
    confirmed = surcharge(col2)[1] if col2 >= 0 else np.zeros(len(extra), dtype=bool)
    recurring = stood_out & ((level == 0) | confirmed)
    return (np.where(recurring, expected + extra, expected),
            np.where(recurring, np.maximum(scale, 0.1 * np.abs(extra)), scale))


def _pct(excess: np.ndarray, expected: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(expected > 0, excess / expected * 100.0, np.inf)


def _z(actual: np.ndarray, expected: np.ndarray, log_scale: np.ndarray,
       scale: np.ndarray) -> np.ndarray:
    """Surprise in robust std devs: in log space where costs are positive, else in dollars."""
    with np.errstate(invalid="ignore", divide="ignore"):
        linear = (actual - expected) / scale
        in_logs = _log_ratio(actual, expected) / log_scale
    return np.where(np.isfinite(in_logs), in_logs, linear)


def _material(excess: np.ndarray, expected: np.ndarray, config: DetectionConfig) -> np.ndarray:
    """Big enough to act on: both the $ and the % bar."""
    return (excess >= config.min_impact) & (_pct(excess, expected) >= config.min_pct_change)


def _elevated(excess: np.ndarray, expected: np.ndarray, z: np.ndarray,
              config: DetectionConfig) -> np.ndarray:
    """Still above normal: half the bars and one robust std dev, so noise inside an episode
    does not end it (and re-alert it the next day)."""
    return ((excess >= 0.5 * config.min_impact) & (z >= 1.0)
            & (_pct(excess, expected) >= 0.5 * config.min_pct_change))


def score(merged: pd.DataFrame, config: DetectionConfig,
          previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """Classify each (day, series): spike, sustained, level_shift, new_spend, drop or "" (a
    normal day). Every row is returned, scored, so cost_scores can keep them all.

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
    log_scale = merged["log_scale"].to_numpy(dtype=float, na_value=np.nan)
    run = merged["elevated_days"].fillna(0).to_numpy().astype(np.int64)
    prior_actual = merged["prior_actual"].fillna(0).to_numpy(dtype=float)
    prior_expected = merged["prior_expected"].fillna(0).to_numpy(dtype=float)
    # "New" only means something once the table holds a month of history for that day.
    warm = (merged.groupby("usage_date")["history_days"].transform("max").fillna(0)
            .to_numpy() >= WARM_HISTORY_DAYS)

    impact = actual - expected
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(expected > 0, impact / expected * 100.0, np.nan)
    z = _z(actual, expected, log_scale, scale)
    hard = ~is_new & _material(impact, expected, config) & (z >= thr)
    elevated = ~is_new & _elevated(impact, expected, z, config)
    days3_actual, days3_expected = prior_actual + actual, prior_expected + expected
    z3 = _z(days3_actual, days3_expected, log_scale / np.sqrt(SUSTAINED_DAYS),
            scale * np.sqrt(SUSTAINED_DAYS))
    sustained = (elevated & (run >= SUSTAINED_DAYS - 1) & (z3 >= thr)
                 & _material((days3_actual - days3_expected) / SUSTAINED_DAYS,
                             days3_expected / SUSTAINED_DAYS, config))
    new_spend = is_new & warm & (impact >= config.min_impact)
    drop = (~is_new & (history >= YOUNG_DAYS) & (z <= -thr) & (-impact >= config.min_impact)
            & (np.nan_to_num(-pct, nan=np.inf) >= config.min_pct_change))

    walk = _walk_episodes(merged, previous, usage_days(merged), elevated, hard | sustained,
                          new_spend, drop, run, hard & (run == 0), impact)
    continuing, opens, start, opened_as, drop_opens = walk

    kind = np.full(len(merged), "", dtype=object)
    kind[opens] = np.where(opened_as[opens] == OPENED_SPIKE, "spike", "sustained")
    kind[continuing] = np.where(opened_as[continuing] == OPENED_SPIKE, "level_shift",
                                "sustained")
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
    out["alert"] = opens | new_spend | ((kind == "drop") & drop_opens & config.alert_on_drops)
    return out.sort_values(["usage_date", "impact"], ascending=[True, False], kind="stable")


OPENED_SPIKE, OPENED_SUSTAINED = 1, 2


def _walk_episodes(
    merged: pd.DataFrame,
    previous: pd.DataFrame | None,
    days: np.ndarray,
    elevated: np.ndarray,
    worthy: np.ndarray,
    new_spend: np.ndarray,
    drop: np.ndarray,
    run: np.ndarray,
    jump: np.ndarray,
    impact: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Day by day (vectorised over series): an elevated day of an open episode continues it
    (unless its impact doubles the episode's peak); a worthy day with no open episode opens
    one, its start traced back over the elevated run. Drops open and close the same way."""
    prev = previous if previous is not None and len(previous) else None
    n = len(merged)
    if prev is None and (n == 0 or (days == days[0]).all()):
        # One day and nothing open before it (the daily run without history of episodes):
        # no state to carry, so no need to identify series across days.
        opens = worthy.copy()
        start = np.where(opens, days - run, days)
        opened_as = np.where(jump, OPENED_SPIKE, OPENED_SUSTAINED).astype(np.int8)
        return np.zeros(n, dtype=bool), opens, start, opened_as, drop.copy()
    keys = merged[SERIES_KEY].astype("string")
    keys_all = keys if prev is None else pd.concat(
        [keys, prev[SERIES_KEY].astype("string")], ignore_index=True)
    codes_all = (pd.MultiIndex.from_frame(keys_all).factorize()[0] if len(keys_all)
                 else np.zeros(0, dtype=np.int64))
    codes = codes_all[: len(keys)]
    n_codes = int(codes_all.max()) + 1 if len(codes_all) else 0
    open_start = np.full(n_codes, np.datetime64("NaT"), dtype="datetime64[D]")
    open_kind = np.zeros(n_codes, dtype=np.int8)
    peak = np.zeros(n_codes)
    dropping = np.zeros(n_codes, dtype=bool)
    if prev is not None:
        prev_codes = codes_all[len(keys):]
        up = prev["kind"].isin(UP_KINDS).to_numpy()
        open_start[prev_codes[up]] = pd.to_datetime(
            prev.loc[up, "anomaly_start"]).to_numpy().astype("datetime64[D]")
        open_kind[prev_codes[up]] = np.where(
            prev.loc[up, "kind"].isin(["spike", "level_shift", "new_spend"]),
            OPENED_SPIKE, OPENED_SUSTAINED)
        peak[prev_codes[up]] = prev.loc[up, "impact"].to_numpy(dtype=float)
        dropping[prev_codes[(prev["kind"] == "drop").to_numpy()]] = True

    continuing = np.zeros(n, dtype=bool)
    opens = np.zeros(n, dtype=bool)
    drop_opens = np.zeros(n, dtype=bool)
    start = days.copy()
    opened_as = np.zeros(n, dtype=np.int8)
    order = np.argsort(days, kind="stable")
    boundaries = np.flatnonzero(np.diff(days[order].astype(np.int64))) + 1
    for rows in np.split(order, boundaries) if n else []:
        c = codes[rows]
        is_open = ~np.isnat(open_start[c])
        bigger = is_open & worthy[rows] & (impact[rows] >= REALERT_FACTOR * peak[c])
        cont = elevated[rows] & is_open & ~bigger
        new = worthy[rows] & ~cont
        continuing[rows], opens[rows] = cont, new
        drop_opens[rows] = drop[rows] & ~dropping[c]
        traced = np.where(bigger, 0, run[rows])
        start[rows] = np.where(cont, open_start[c],
                               np.where(new, days[rows] - traced, days[rows]))
        opened_as[rows] = np.where(cont, open_kind[c],
                                   np.where(jump[rows] | bigger, OPENED_SPIKE, OPENED_SUSTAINED))
        # Tomorrow, only the episodes alive today are open.
        new_peak = np.where(cont, np.maximum(peak[c], impact[rows]), impact[rows])
        open_start[:] = np.datetime64("NaT")
        peak[:] = 0.0
        dropping[:] = False
        alive = cont | new | new_spend[rows]
        open_start[c[alive]] = start[rows][alive]
        open_kind[c[alive]] = np.where(new_spend[rows][alive], OPENED_SPIKE,
                                       opened_as[rows][alive])
        peak[c[alive]] = new_peak[alive]
        dropping[c[drop[rows]]] = True
    return continuing, opens, start, opened_as, drop_opens
