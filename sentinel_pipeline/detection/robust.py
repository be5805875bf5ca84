"""The default detector: robust, seasonal baselines and episode-aware alerts.

Why each piece is there:
- Medians, not means, so one spike does not raise the baseline of the following days.
- A weekday profile from each day's share of its own week, so quiet weekends and busy Mondays
  are expected, and a level shift or trend inside the lookback does not bend the profile.
- Noise measured in log space (cost noise is multiplicative), from week-over-week changes of each
  weekday (_noise): noisy services need a bigger jump, flat ones do not alert on cents, and a
  level change or trend in the window does not inflate the noise.
- Scores are calibrated z: a residual over an estimated scale has t tails, turned into the
  normal z of the same tail, so a threshold means a false-alarm rate.
- A steady trend (a growing business) is part of normal: a robust slope through the lookback's
  weeks (Tukey's resistant line, limited so a level shift is not taken for growth) brings the
  recent days forward to D before their median is taken, and each past day is judged against
  the level of its own date. Without it, a level that lags 7 days behind a growing bill made
  growing series alert (and, carried from day to day, feed the drift).
- The expected cost is the higher of the recent level (last 14 days) and the lookback's level,
  so the return to normal after a drop or a pause is not news (the normal range's floor comes
  down to the recent level, so a lasting drop is one); an open episode is left out of the
  recent level for up to ADOPT_DAYS, so a ramp is not measured against itself.
- Episodes in the lookback are not normal: days of a run that stood far above the model are
  replaced by the model's cost and everything is estimated again (_without_episodes), so a
  history full of ramps and spikes does not lift the level and the noise the next one is
  measured against. So are the days of episodes Sentinel itself flagged, once over
  (verdicts.py): the first rule, judged against estimates the episodes lifted, leaves a ramp's
  moderate days in.
- A charge that stood out on the same day of last month, and is known to recur (the series
  bills only on such days, or did the month before too), is expected again on top of normal.
- Both size ($ impact, % change) and surprise (score) must pass, so tiny series never alert.
- Episodes: consecutive elevated days are one anomaly with a start day. The first day worth it
  alerts; later days are recorded (``alert=False``) until the baseline has adapted, unless the
  episode doubles its impact. An increase too small to alert on one day alerts when the drift
  statistics (two CUSUMs, carried from one day's scores to the next: _Drift) reach the
  threshold and its cost above expected since it began reaches min_impact. Drops are episodes
  too.
- Feedback (feedback.py): an episode marked expected / planned has its level adopted from the day
  after its alert (``level_since``), and not_anomaly raises that series' bar for that kind
  (``bars`` in ``score``).
"""

from __future__ import annotations

import calendar
import functools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np
import pandas as pd

from sentinel_pipeline.detection.config import DetectionConfig
from sentinel_pipeline.detection.feedback import bar_columns
from sentinel_pipeline.detection.frames import CostMatrix, baseline_frame, usage_days
from sentinel_pipeline.schema import SERIES_KEY, UP_KINDS, with_owner

LEVEL_DAYS = 14
RESIDUAL_DAYS = 28
RUN_DAYS = 14  # how far back an episode is traced (and the drift statistic runs)
MAD_TO_SIGMA = 1.4826
# The noise comes from week-over-week changes of each weekday less the trimmed mean change of
# that pair of weeks (the 7 changes without the highest and lowest, so one monthly charge does
# not leak into the other six). For normal noise of sd 1 a day (a change then has sd sqrt(2)),
# the median of those |changes| is 0.8379, by simulation; test_detection_drift.py re-derives it
# and checks the scale on series of known noise. (The lower quartile, more robust to a history
# full of anomalies, was tried: it gained nothing on the public benchmark and, being noisier,
# raised false alerts in-repo from 0.69 to 0.83 per 100 series-month.)
MEDIAN_CHANGE_TO_SIGMA = 0.8379
# A scale estimated from a few dozen changes is itself uncertain, so a residual over it has
# Student-t tails, not normal ones: with 8 weeks of changes a "4 sigma" day was 14 times as
# common as the normal tail says. The scale from m changes is worth m / CHANGES_PER_DF degrees
# of freedom (the MAD's 37 % efficiency, each day in two changes; measured by simulation), and
# the expected cost, a median of LEVEL_DAYS days, adds its own error: scores convert the t back
# to the normal z of the same tail, so a threshold s means P(Z > s) false alarms a series-day.
CHANGES_PER_DF = 2.7
RELATIVE_SCALE_FLOOR = 0.05  # a day within 5 % of expected is never surprising
MIN_WEEKS_FOR_PROFILE = 3  # with 3 samples a weekday median shrugs off one spike
# Weeks needed for a trend: 6 make thirds of 2 weeks (the lookback's 63 days: thirds of 3).
MIN_WEEKS_FOR_TREND = 6
# Week-over-week changes needed before the noise is trusted: 3 pairs of full weeks' (or as many
# from pairs with days without spend, _partial_pairs). With fewer,
# the young series' floor applies (2 weeks' changes once made new services look like spikes).
MIN_LOG_RESIDUALS = 21
YOUNG_DAYS = 14  # a series younger than this has no known weekly shape yet
YOUNG_SCALE_FLOOR = 0.25  # so its normal weekday swings are not alerts
WARM_HISTORY_DAYS = 35  # "new" needs a full billing month seen, or monthly fees look new
# Drift: one-sided CUSUMs of the day's standardised log residual open an episode whose cost
# crept up (a ramp, a leak) before any single day is surprising. Two reference values, the
# textbook pair for a bank of CUSUMs: K = 0.5 is quickest to see a shift of about 1 standard
# deviation, K = 1.5 one of about 3. A day counts at most CUSUM_CAP, so one spike alone never
# makes a drift.
CUSUM_KS = (0.5, 1.5)
CUSUM_CAP = 3.0
# A CUSUM carried from day to day stays above a level for a few days once it gets there, so the
# share of days above h is more than the rate of first crossings (1 / ARL, Siegmund): 3.3 times
# for K = 0.5 on normal days, by simulation (re-derived in test_detection_drift.py). For
# K = 1.5 the share is below 1 / ARL (0.4-0.6), so the ARL is kept there, the cautious side.
# Scores convert the share, so a threshold s is P(Z > s) of the days, as for the day's jump.
CUSUM_DAY_SHARE = {0.5: 3.3, 1.5: 1.0}
# Until an elevated run has lasted this long its days are left out of the level (the baseline
# does not chase an open episode); after it, the new level is taken as the new normal.
ADOPT_DAYS = 14
EPISODE_Z = 2.0  # drift evidence (as a z) from which an elevated run is an open episode
RECURRING_MARGIN = 3.0  # robust std devs a same-day-last-month charge must stand out by
REALERT_FACTOR = 2.0  # an open episode alerts again when its impact doubles
# A month's-turn step is read as a price per month only where the months' ratio is 2 x this
# many standard errors of the step, and the step no more than this many past the ratio.
PRORATED_Z = 2.0


# How a day's anomalies are listed: largest $ impact first.
ANOMALY_ORDER = ("impact", False)


def history_days(config: DetectionConfig) -> int:
    return config.lookback_days


def _abs_floor(config: DetectionConfig) -> float:
    """Smallest scale, in $: tied to min_impact so scaling all costs and it changes nothing."""
    return max(config.min_impact * 0.01, 1e-9)


def _months_back(day: date, months: int, month_end: bool = False) -> date:
    """The same date ``months`` months before ``day`` (that month's last day where it is
    shorter), or with ``month_end`` that month's last day."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, last if month_end else min(day.day, last))


def _month_share(first: date, width: int, day: date) -> np.ndarray | None:
    """A price per month spread over the month's days: each of the ``width`` days from
    ``first`` costs this share of ``day``'s (its month's length over theirs: a January day is
    28/31 of a February one). None where that makes no difference to the level and the run
    before ``day``: no day of its month among the last RUN_DAYS yet (the 1st), or none of
    another month's length (those days are all this month's, or the months are as long)."""
    length = calendar.monthrange(day.year, day.month)[1]
    start = day.replace(day=1)
    new = (day - start).days
    if not 0 < new < min(RUN_DAYS, width):
        return None
    before = start - timedelta(days=1)
    ratio = length / calendar.monthrange(before.year, before.month)[1]
    if ratio == 1:
        return None
    share = np.ones(width, dtype=np.float32)
    share[:width - new] = ratio
    return share


def _prorated(deseasoned: np.ndarray, noise: np.ndarray, log_scale: np.ndarray,
              share: np.ndarray) -> np.ndarray:
    """Series whose weekday-adjusted cost stepped at the month's turn by the ratio of the
    months' lengths (``share``: _month_share), where their noise can tell that step from none.

    The step is between the medians of the two months' days. Decided only where the ratio is
    2 x PRORATED_Z standard errors of the step (on the measured ``noise``): then the step is
    nearer the ratio than 0 for a series priced per month and nearer 0 for one priced by use,
    each but 1 time in 44. A series whose step is PRORATED_Z standard errors (on the floored
    ``log_scale``) past the ratio keeps its days as they are: it rose for another reason, and
    that rise is news.

    A series whose noise cannot tell the ratio from no step is read as priced per month at
    February's turn (31/28, +10.7 %, or 31/29, +6.9 %, in a leap year: FEBRUARY_TURN) where
    its step is not PRORATED_Z standard errors off the ratio: an alert must be news either
    way. Kept as they were, a per-month series' February days each stood above normal and
    added up to a sustained alert (`storage`, benchmarks/shapes.py: 4.97 -> 1.06 false alerts
    per 100 series-month; in a leap year 2.53 -> 1.09). The turns of 31/30 (3.3 %), four a
    year, need more of the noise's help to keep an episode going: read as priced per month
    they cost series priced by use more recall than they saved alerts. A month with more days
    keeps its days as they are, which expects more already."""
    last = share != 1
    ratio = -np.log(float(share[0]))
    # se of the step per sd of noise, with every day counted: no less for any series
    unit = np.sqrt(np.pi / 2 * (1 / (~last).sum() + 1 / last.sum()))
    out = np.zeros(len(deseasoned), dtype=bool)
    if ratio > FEBRUARY_TURN:
        rows = np.arange(len(deseasoned))
    else:
        rows = np.flatnonzero(abs(ratio) >= 2 * PRORATED_Z * noise * unit)  # most are noisier
    if not len(rows):
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.log(np.where(deseasoned[rows] > 0, deseasoned[rows], np.nan))
    after, before = logs[:, ~last], logs[:, last]
    step = _median(after) - _median(before)
    after_n, before_n = (np.isfinite(days).sum(axis=1) for days in (after, before))
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.sqrt(np.pi / 2 * (1 / after_n + 1 / before_n))
    told_now = abs(ratio) >= 2 * PRORATED_Z * noise[rows] * unit
    out[rows] = ((after_n > 0) & (before_n >= MIN_NORMAL_DAYS)
                 & (~told_now | (step * np.sign(ratio) >= abs(ratio) / 2))
                 & (np.abs(step - ratio) <= PRORATED_Z * log_scale[rows] * unit))
    return out


# A day's price rises at a month's turn by the ratio of the months' lengths: 31/28 or 31/29
# into February, at most 31/30 into any other month. A log ratio above this is February's
# (the bar lies between 31/30 and 31/29, clear of float32 rounding).
FEBRUARY_TURN = float(np.log(31 / 30) + np.log(31 / 29)) / 2


def _billing_days(day: date) -> list[tuple[date, date]]:
    """The days last month and the month before that a monthly charge due on ``day`` fell on:
    the same date, and on a month's last day also the last days of those months. Billing at
    month end lands on the 28th, 30th and 31st: matched by date alone, a month-end charge was
    news on the last day of every month after a shorter one (43.8 false alerts per 100
    series-month on such series, 0.19 with a charge on one date, benchmarks/shapes.py)."""
    days = [(_months_back(day, 1), _months_back(day, 2))]
    if (day + timedelta(days=1)).day == 1:
        ends = (_months_back(day, 1, month_end=True), _months_back(day, 2, month_end=True))
        if ends != days[0]:
            days.append(ends)
    return days


def _median(values: np.ndarray, scratch: bool = False) -> np.ndarray:
    """Row medians ignoring NaN (NaN when a row has none), in ``values``' dtype: a series'
    median does not depend on whether another series in the same call had NaN.

    Rows are sorted, NaN last, and read at the middle of their own values: numpy's vectorised
    sort of a short row is several times faster than np.partition's selection of the two middle
    values (the hot path at scale), and gives the same order statistics. ``scratch``: the caller
    no longer needs ``values``, so it is sorted in place instead of copied (unless it holds -0.0:
    _middle then needs the rows as they were).
    """
    n, width = values.shape
    if width == 0 or n == 0:
        return np.full(n, np.nan)
    signed = bool((np.signbit(values) & (values == 0)).any())
    ordered = values if scratch and not signed else values.copy()
    ordered.sort(axis=1)  # NaN sorts last
    return _middle(ordered, values if signed else None)


def _middle(ordered: np.ndarray, unsorted: np.ndarray | None) -> np.ndarray:
    """The medians of rows sorted NaN last, in their dtype (NaN for a row of NaN).
    ``unsorted``: the rows before the sort, or None if no -0.0 is in them.

    The medians are np.partition's of a row without NaN, the sort's of one with (as they were
    taken before the sort did both): the same values, but of a 0 in the middle the two may take
    a different sign when the row holds both -0.0 and 0.0, so those rows are partitioned."""
    width = ordered.shape[1]
    lo, hi = (width - 1) // 2, width // 2
    middle = (ordered[:, lo] + ordered[:, hi]) / 2
    no_nan = ~np.isnan(ordered[:, -1])
    if unsorted is not None:
        zero = np.flatnonzero(((ordered[:, lo] == 0) | (ordered[:, hi] == 0)) & no_nan)
        signed = zero[(np.signbit(ordered[zero]) & (ordered[zero] == 0)).any(axis=1)]
        if len(signed):
            part = unsorted[signed]
            part.partition([lo, hi], axis=1)
            middle[signed] = (part[:, lo] + part[:, hi]) / 2
    gaps = np.flatnonzero(~no_nan)
    if len(gaps):  # read at the middle of their own values
        ordered = ordered[gaps]
        count = width - np.isnan(ordered).sum(axis=1)
        lo_i = np.clip((count - 1) // 2, 0, width - 1)
        hi_i = np.clip(count // 2, 0, width - 1)
        rows = np.arange(len(ordered))
        median = (ordered[rows, lo_i] + ordered[rows, hi_i]) / 2
        middle[gaps] = np.where(count > 0, median, np.nan)
    return middle


@functools.cache
def _sorting_network(k: int) -> tuple[tuple[int, int], ...]:
    """Batcher's odd-even merge sort comparators for k inputs (those of the next power of two
    that touch only the first k: the missing inputs count as +inf, which never move)."""
    size = 1 << max(k - 1, 0).bit_length()
    pairs = []
    p = 1
    while p < size:
        q = p
        while q >= 1:
            for j in range(q % p, size - q, 2 * q):
                for i in range(min(q, size - j - q)):
                    a, b = i + j, i + j + q
                    if a // (2 * p) == b // (2 * p) and b < k:
                        pairs.append((a, b))
            q //= 2
        p *= 2
    return tuple(pairs)


def _median_of_stack(stack: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median along the first axis of ``stack`` of the ``count`` values that are not +inf (the
    missing ones; NaN where none is there): the weekday profile's medians of a few weeks, for
    every series and weekday at once. np.partition works one short row at a time; a sorting
    network is ~k log2(k)^2 / 4 min/max passes over whole arrays, run here on blocks of series
    small enough to stay in the CPU cache (over a million series at once, the passes went to
    memory and were slower than the partitions). Same values as _median of the values with NaN
    for the missing ones: the middle two order statistics, averaged."""
    k, n = stack.shape[0], stack.shape[1]
    out = np.empty(stack.shape[1:], dtype=stack.dtype)
    network = _sorting_network(k)
    spare_block = np.empty((min(n, NETWORK_BLOCK),) + stack.shape[2:], dtype=stack.dtype)
    for start in range(0, n, NETWORK_BLOCK):
        part = slice(start, min(start + NETWORK_BLOCK, n))
        rank = [stack[i, part] for i in range(k)]
        spare = spare_block[:part.stop - part.start]
        for a, b in network:  # in place: fresh arrays each step cost page faults
            np.minimum(rank[a], rank[b], out=spare)
            np.maximum(rank[a], rank[b], out=rank[b])
            rank[a], spare = spare, rank[a]
        lo, hi = (count[part] - 1) // 2, count[part] // 2
        out[part] = (_pick(rank, lo) + _pick(rank, hi)) / 2
    return out


def _pick(rank: list[np.ndarray], at: np.ndarray) -> np.ndarray:
    """``rank[at]`` elementwise (NaN where ``at`` is out of range): ``rank[i]`` itself where
    every ``at`` is i, as on series that spent every day of the lookback."""
    if not at.size:
        return np.full_like(rank[0], np.nan)
    first, last = int(at.min()), int(at.max())
    if first == last and 0 <= first < len(rank):
        return rank[first]
    picked = np.full_like(rank[0], np.nan)
    for i in range(max(first, 0), min(last, len(rank) - 1) + 1):
        np.copyto(picked, rank[i], where=at == i)
    return picked


NETWORK_BLOCK = 8192  # series per block: k arrays of 8192 x 7 float32 stay in a core's cache


def _trailing_run(flags: np.ndarray) -> np.ndarray:
    """How many of the last columns in a row are True, counting back from the end."""
    if flags.shape[1] == 0:
        return np.zeros(flags.shape[0], dtype=np.int64)
    backwards = flags[:, ::-1]
    return np.where(backwards.all(axis=1), flags.shape[1], backwards.argmin(axis=1))


def _log_ratio(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """ln(actual / expected) where both are positive, else NaN."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        out = np.log(actual / expected)
    out[~((actual > 0) & (expected > 0))] = np.nan
    return out


def baselines_from_matrix(matrix: CostMatrix, day: date, config: DetectionConfig,
                          level_since: Mapping[int, date] | None = None,
                          flagged: np.ndarray | None = None) -> pd.DataFrame:
    """Seasonal median baseline, noise scale and the elevated run before ``day``.

    ``level_since`` (matrix row -> day): the first day of an episode whose new level was
    accepted (feedback.py): that series' level is the median of its days from then on (at most
    LEVEL_DAYS of them), adopted at once, not after ADOPT_DAYS. ``flagged`` (like
    ``matrix.values``): days of episodes Sentinel flagged (verdicts.py), left out of the
    history with the episodes _without_episodes finds.

    Worked out CHUNK_SERIES series at a time: each series' figures are its own, and a chunk's
    arrays are small enough to be reused from one step to the next rather than each taken
    fresh from the operating system (over a million series at once, a third of the time went
    to page faults)."""
    n_series = matrix.values.shape[0]
    parts = []
    for start in range(0, max(n_series, 1), CHUNK_SERIES):
        rows = slice(start, min(start + CHUNK_SERIES, n_series))
        chunk = CostMatrix(matrix.keys.iloc[rows], matrix.first, matrix.values[rows],
                           matrix.present[rows])
        since = {row - start: on for row, on in (level_since or {}).items()
                 if start <= row < rows.stop}
        parts.append(_baseline_columns(chunk, day, config, since,
                                       None if flagged is None else flagged[rows]))
    columns = (parts[0] if len(parts) == 1
               else {name: np.concatenate([p[name] for p in parts]) for name in parts[0]})
    return baseline_frame(matrix.keys, day, columns, "robust")


# Series per chunk of baselines_from_matrix. One day over 1,000,000 series x 63 days: 6.0 s
# CPU at once, 4.1-4.8 s in chunks of 262,144, 4.8 s of 65,536, 6.0 s of 16,384 (a chunk's
# fixed Python cost); 2026-12-03, load ~1 on 2 cores.
CHUNK_SERIES = 262_144


def _baseline_columns(matrix: CostMatrix, day: date, config: DetectionConfig,
                      level_since: Mapping[int, date],
                      flagged: np.ndarray | None) -> dict[str, np.ndarray]:
    """baselines_from_matrix's columns for the series of ``matrix``, in its row order."""
    # float32 for the series x day work: cost data has no 8 significant digits to lose, and at a
    # million series halving the bytes moved is what makes it fast.
    values, present = matrix.values.astype(np.float32), matrix.present
    n_series, n_days = values.shape
    with np.errstate(invalid="ignore", divide="ignore"):  # no spend: -inf, never above a bound
        logs = np.log(values)  # read by _autocorrelation and _without_episodes: one pass, not two
    weekdays = (matrix.day_numbers().astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    thr = config.score_threshold

    # Days before a series first appeared are unknown, not zero: a young series is judged on
    # the days it has existed, so a new service does not look like a spike on its second day.
    first_seen = np.where(present.any(axis=1), present.argmax(axis=1), n_days)
    age = n_days - first_seen
    columns = np.arange(n_days)

    # The weekday profile, the lookback's level, the noise and the trend, from the whole weeks
    # that end the window.
    offset = n_days % 7
    factor, level_long, log_scale, noise_df, slope = _shape(values, present, first_seen,
                                                            weekdays, offset)
    accepted_col = np.full(n_series, -1, dtype=np.int64)
    for row, since in level_since.items():
        accepted_col[row] = max((since - matrix.first).days, 0)
    accepted = accepted_col >= 0

    # Level: median of the last days with the weekday effect taken out; and of the lookback.
    recent = max(n_days - RESIDUAL_DAYS, 0)
    seen_r = columns[recent:] >= first_seen[:, None]

    def recent_days(costs: np.ndarray, rows: np.ndarray | slice) -> tuple[np.ndarray, ...]:
        """The recent days of ``rows`` (their ``costs``): as they are, each day's normal share
        of D's level (so the days' median is the level of D, not of a week before it), and
        the days with that share taken out."""
        active = np.where(seen_r[rows], costs[:, recent:], np.nan)
        share = _normal_share(factor[rows], slope[rows], weekdays, columns[recent:], n_days)
        with np.errstate(invalid="ignore", divide="ignore"):
            return active, share, active / share

    active_r, factor_r, deseasoned = recent_days(values, slice(None))
    autocorr = _autocorrelation(values, present, first_seen, factor.astype(np.float32),
                                weekdays, log_scale, logs)
    # Episodes in the history are not normal: estimated again without them (_without_episodes).
    nothing_left_out = np.zeros(n_series, dtype=np.int64)
    level_recent = _recent_level(deseasoned, nothing_left_out)
    replacement = np.fmax(level_recent, level_long)
    if flagged is not None:
        flagged = _episodes_over(flagged, values, present, factor, weekdays)
    if flagged is not None:
        replacement = _normal_level(replacement, deseasoned, flagged[:, recent:])
    cleaned_rows, cleaned = _without_episodes(values, present, first_seen, weekdays, factor,
                                              slope, replacement, log_scale, ~accepted, flagged,
                                              logs)
    del logs
    left_out = np.zeros(n_series, dtype=np.int64)
    if len(cleaned_rows):
        left_out[cleaned_rows] = (cleaned != values[cleaned_rows]).sum(axis=1)
        rows, refit = cleaned_rows, _shape(cleaned, present[cleaned_rows],
                                           first_seen[cleaned_rows], weekdays, offset)
        for whole, part in zip((factor, level_long, log_scale, noise_df, slope), refit,
                               strict=True):
            whole[rows] = part
        active_r[rows], factor_r[rows], deseasoned[rows] = recent_days(cleaned, rows)
        level_recent[rows] = _recent_level(deseasoned[rows], nothing_left_out[rows])
        autocorr[rows] = _autocorrelation(cleaned, present[rows], first_seen[rows],
                                          factor[rows].astype(np.float32), weekdays,
                                          log_scale[rows])
    floor = np.where((age < YOUNG_DAYS) | np.isnan(log_scale), YOUNG_SCALE_FLOOR,
                     RELATIVE_SCALE_FLOOR)
    # A series with few days of spend in the recent window (a job run now and then) is read
    # over the whole lookback (_sporadic).
    spend_r = np.isfinite(deseasoned) & (deseasoned != 0)
    sparse = np.flatnonzero((spend_r.sum(axis=1) < LEVEL_DAYS) & (age >= YOUNG_DAYS))
    long_days = None
    intermittent = np.zeros(n_series, dtype=bool)  # read as a job run now and then
    if len(sparse):
        history = values[sparse]
        if len(cleaned_rows):  # the history without its episodes, as the rest was refitted
            _, in_sparse, in_cleaned = np.intersect1d(sparse, cleaned_rows,
                                                      return_indices=True)
            history[in_sparse] = cleaned[in_cleaned]
        long_days, sporadic = _sporadic(history, first_seen[sparse], factor[sparse],
                                        slope[sparse], weekdays)
        level_recent[sparse[sporadic]] = _median(_last_spending_days(long_days[sporadic],
                                                                     n_days))
        intermittent[sparse[sporadic]] = True
    # Those the changes could not measure keep the young floor (``floor`` above), raised to
    # their recent spread where that is wider (of a sparse series, over the whole lookback).
    unknown = np.flatnonzero(np.isnan(log_scale) & (age >= YOUNG_DAYS))
    if len(unknown):
        log_scale[unknown] = _recent_spread(deseasoned[unknown], level_recent[unknown])
        if long_days is not None:
            both, _, at_sparse = np.intersect1d(unknown, sparse, return_indices=True)
            if len(both):
                log_scale[both] = _recent_spread(
                    _last_spending_days(long_days[at_sparse], n_days, RESIDUAL_DAYS),
                    level_recent[both])
    measured = np.where(np.isnan(log_scale), np.log1p(floor), log_scale)
    log_scale = np.fmax(log_scale, np.log1p(floor))
    # Storage priced per GB-month costs the month's price over its days: where the recent
    # days stepped at the month's turn by the ratio of the months' lengths, the last month's
    # days are put in this month's terms.
    month_share = _month_share(matrix.first + timedelta(days=recent), n_days - recent, day)
    if month_share is not None:
        prorated = np.flatnonzero(_prorated(deseasoned, measured, log_scale, month_share)
                                  & ~intermittent)
        if len(prorated):
            deseasoned[prorated] /= month_share
            factor_r[prorated] *= month_share
            level_recent[prorated] = _recent_level(deseasoned[prorated],
                                                   nothing_left_out[prorated])
    tail = slice(max(deseasoned.shape[1] - RUN_DAYS, 0), None)

    def model(rows: np.ndarray | slice, excluded: np.ndarray) -> dict[str, np.ndarray]:
        """Expected cost, scale and the state of the days just before ``day`` of the series
        ``rows`` when their level leaves out their last ``excluded`` days (an open episode)."""
        recent_level = (_recent_level(deseasoned[rows], excluded) if excluded.any()
                        else level_recent[rows].copy())
        adopted = accepted[rows]
        if adopted.any():
            recent_level[adopted] = _accepted_level(deseasoned[rows][adopted],
                                                    accepted_col[rows][adopted] - recent)
        level = np.nan_to_num(np.fmax(recent_level, np.where(adopted, np.nan, level_long[rows])),
                              nan=0.0)
        level = np.where(np.nan_to_num(recent_level) < 0, np.nan_to_num(recent_level), level)
        today = factor[rows, day.weekday()]
        expected = level * today
        # A level that fell and held there for half the recent days is the recent level's
        # (its median): the range reaches down to it, so a resize down is one drop, not a
        # month of them while the lookback's level catches up. The expected cost keeps the
        # higher level, so the way back up is no news either.
        fallen = np.fmax(level - recent_level, 0.0) * today
        model_r = level.astype(np.float32)[:, None] * factor_r[rows]
        noise = log_scale[rows]
        has_log = np.isfinite(noise) & (expected > 0)
        scale = _scale(expected, has_log, noise, floor[rows], active_r[rows], model_r, config)
        # Monthly recurring charges (or a job run every other week: ``job``), on top of that
        # day's normal cost, or the day's place in a monthly cycle, whichever expects more.
        # Both can fit the same past days: a month-end close's first day stands out alone
        # in its weekday's terms as a charge would, but a cycle is a share of the day's cost
        # (on a busy weekday it costs more dollars) and was seen in days around the date too
        # (_month_phase's median of three), which a charge never is.
        normal = expected
        charged, charged_scale, loose, job, early = _recurring(values[rows], present[rows],
                                                        matrix.first, day, level, factor[rows],
                                                        weekdays, expected, scale, slope[rows])
        cycle = np.exp(_month_phase(values[rows], present[rows], matrix.first, day, level,
                                    factor[rows], weekdays, slope[rows], noise))
        cyclic = (cycle > 1) & (cycle * normal > charged)
        cycle[~cyclic] = 1.0
        expected = np.where(cyclic, normal * cycle, charged)
        scale = np.where(cyclic, scale * cycle, charged_scale)
        job[cyclic] = 0.0
        monthly = expected - normal - job
        loose |= cycle > 1  # a cycle's rise that does not come is no drop
        # The days just before, judged against today's model of each weekday: how many in a
        # row were elevated (the open episode), its money so far, and the drift statistic.
        seen = seen_r[rows][:, tail]
        actual_past = np.where(seen, values[rows][:, recent:][:, tail], 0.0)
        expected_past = model_r[:, tail]
        z_past = _z(actual_past, expected_past, noise.astype(np.float32)[:, None],
                    scale.astype(np.float32)[:, None], noise_df[rows, None].astype(np.float32))
        run = _trailing_run(seen & (actual_past > expected_past) & (z_past >= 1.0))
        # The run's money, added up only for the series in a run (most are not: their 0).
        running = np.flatnonzero(run > 0)
        in_run = (np.arange(actual_past.shape[1])[None, :]
                  >= actual_past.shape[1] - run[running, None])
        run_actual = np.zeros(len(run), dtype=actual_past.dtype)
        run_actual[running] = np.where(in_run, actual_past[running], 0.0).sum(axis=1)
        run_expected = np.zeros(len(run), dtype=expected_past.dtype)
        run_expected[running] = np.where(in_run, expected_past[running], 0.0).sum(axis=1)
        cusum, cusum_large = _cusums(np.where(seen, z_past, 0.0)
                                     / _drift_unit(autocorr[rows])[:, None])
        return {
            "expected": expected, "scale": scale, "has_log": has_log, "run": run,
            "run_actual": run_actual, "run_expected": run_expected,
            "cusum": cusum, "cusum_large": cusum_large,
            "lowest": np.where(loose, normal, expected) - fallen,
            "monthly": monthly, "early": early,
        }

    # Twice for the series with an open episode: once to find it, once with the level from
    # before it, so a ramp is measured against where the cost was before it began, not against
    # itself. Only a run that is evidence of a change is left out: leaving out days that were
    # merely high by chance would pull every level down.
    m = model(slice(None), nothing_left_out)  # views: no copy of the matrix
    episode = np.flatnonzero((m["run"] > 0) & (m["run"] < ADOPT_DAYS) & ~accepted
                             & (_drift_score(m["cusum"], m["cusum_large"]) >= EPISODE_Z))
    if len(episode):
        again = model(episode, m["run"][episode])
        for name, column in again.items():
            m[name][episode] = column
    expected, scale, has_log = m["expected"], m["scale"], m["has_log"]
    upper = np.where(has_log, expected * np.exp(thr * np.nan_to_num(log_scale)),
                     expected + thr * scale)
    # The range reaches down to a day without a charge that may as well come tomorrow.
    lowest = m["lowest"]
    lower = np.where(has_log, lowest * np.exp(-thr * np.nan_to_num(log_scale)),
                     lowest - thr * scale)
    # Where a day without spend is within a series' normal range (a job run now and then, one
    # that skips days), its range reaches 0, so such a day is not a drop (score: a drop is
    # below ``lower``).
    zero_normal = intermittent | _no_spend_is_normal(values, present, first_seen, thr)
    lower[zero_normal & (lower > 0)] = 0.0
    return {
        "expected_cost": expected,
        "lower": lower,
        "upper": upper,
        "scale": scale,
        "log_scale": np.where(has_log, log_scale, np.nan),
        "noise_df": np.where(has_log, noise_df, np.nan),
        "history_days": age,
        "elevated_days": m["run"],
        "prior_actual": m["run_actual"],
        "prior_expected": m["run_expected"],
        "cusum": m["cusum"],
        "cusum_large": m["cusum_large"],
        "autocorr": autocorr,
        "episode_days_left_out": left_out,
        "monthly_cost": m["monthly"],
        "early_cost": m["early"],
    }


def _recent_spread(deseasoned: np.ndarray, level: np.ndarray) -> np.ndarray:
    """The log noise of series the week-over-week changes could not measure (too few pairs of
    weeks with 4 changes between days with spend: a series skipping 40 % of its days or
    more): the MAD of its recent days with spend around their level, times SPREAD_TO_NOISE;
    NaN with fewer than MIN_SPREAD_DAYS. Fitted to the same days, it is a cruder estimate, so
    it only ever raises the young series' floor the caller applies: a series noisier than
    25 % was judged against 25 % (42 of the 55 false alerts over 4 draws of the skips shape,
    2.91 per 100 series-month; 1.62 with this)."""
    with np.errstate(invalid="ignore", divide="ignore"):  # float64: _median's dtype would
        logs = np.log(deseasoned.astype(np.float64) / level[:, None])  # follow the rows' NaN
    logs[~np.isfinite(logs)] = np.nan
    spread = _median(np.abs(logs - _median(logs)[:, None]), scratch=True) * MAD_TO_SIGMA
    enough = np.isfinite(logs).sum(axis=1) >= MIN_SPREAD_DAYS
    return np.where(enough, spread * SPREAD_TO_NOISE, np.nan)


# The MAD of a series' recent days with spend around their median came out 0.82 of its noise
# on series of known noise (0.5, 35-50 % of the days skipped, trend and weekday pattern, 300
# series x 5 days each; 0.85-0.95 at 0.3-0.4, where the floor cuts off the low ones): it is
# fitted to the same days and the weekday profile to the same weeks. Times 1.21: ~1. (1.15
# while a week's shares were of its mean over all 7 days: the profile was noisier, the days
# around it wider.)
SPREAD_TO_NOISE = 1.21
MIN_SPREAD_DAYS = 8


def _normal_share(factor: np.ndarray, slope: np.ndarray, weekdays: np.ndarray,
                  cols: np.ndarray, n_days: int,
                  dtype: type[np.floating] = np.float32) -> np.ndarray:
    """Each series' normal share of D's level on the days ``cols``: the day's weekday factor
    and the trend back to it (1 on flat series), so a past day is judged against the level of
    its own date. D is the day after the last of the ``n_days`` columns."""
    if len(cols) < factor.shape[1]:  # the days' factors converted, not all 7 of each series
        share = _by_day(factor, weekdays[cols]).astype(dtype, copy=False)
    else:
        share = _by_day(factor.astype(dtype, copy=False), weekdays[cols])
    lags = (n_days - cols).astype(dtype)
    moving = np.flatnonzero(slope)  # a flat series' days are times exp(0) = 1: left as they are
    if len(moving) > len(slope) // 2:
        share *= np.exp(np.multiply.outer(-slope.astype(dtype), lags))
    elif len(moving):
        share[moving] *= np.exp(np.multiply.outer(-slope[moving].astype(dtype), lags))
    return share


def _by_day(per_weekday: np.ndarray, weekdays: np.ndarray) -> np.ndarray:
    """Each series' weekday values laid out on days (a column per day), in row order: numpy's
    ``per_weekday[:, weekdays]`` comes out column-major, and every pass over it afterwards was
    several times slower (a day's subtraction over it 80 times slower, measured)."""
    return np.take(per_weekday, weekdays, axis=1)


def _shape(values: np.ndarray, present: np.ndarray, first_seen: np.ndarray,
           weekdays: np.ndarray, offset: int) -> tuple[np.ndarray, ...]:
    """The weekday factors, the lookback's level, the log noise with its degrees of freedom
    (_weekly) and the trend (_trend) of a lookback's whole weeks, from column ``offset``."""
    weeks = (values[:, offset:], present[:, offset:], first_seen - offset, weekdays[offset:])
    factor, level_long, log_scale, noise_df = _weekly(*weeks)
    return factor, level_long, log_scale, noise_df, _trend(*weeks, factor.astype(np.float32),
                                                           log_scale)


def _without_episodes(values: np.ndarray, present: np.ndarray, first_seen: np.ndarray,
                      weekdays: np.ndarray, factor: np.ndarray, slope: np.ndarray,
                      level: np.ndarray, log_scale: np.ndarray,
                      allowed: np.ndarray, flagged: np.ndarray | None = None,
                      logs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The series whose lookback holds an episode, and their costs with its days replaced by
    the model's cost of their date (level x weekday factor x the trend back to it). The days
    ``flagged`` (by Sentinel's own verdicts, verdicts.py) are an episode's too.

    An episode day is one of a run of at least two days each more than EPISODE_DAY_Z log
    noise sds above the model. Left in, episodes are taken for normal: on a history where a
    third of the days are ramps and spikes (the public benchmark's second year) the level came
    out 11 % and the noise 40 % too high, and the next episode was measured against both. A
    single high day is left in: a median shrugs it off, and on heavy-tailed noise single days
    that high are normal (leaving them out made Student-t series noisier). The model is the
    first pass's, so what it calls far off is judged against a level and noise the episodes
    inflated: a ramp's moderate days stay in. ``allowed``: the series that may be cleaned (not
    those whose new level was accepted by feedback); ``logs``: np.log(values), if at hand."""
    n, n_days = values.shape
    noise = np.fmax(log_scale, np.log1p(RELATIVE_SCALE_FLOOR))
    candidate = (allowed & np.isfinite(noise) & (level > 0)
                 & (n_days - first_seen >= YOUNG_DAYS))
    columns = np.arange(n_days)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_level = np.where(candidate, np.log(level), np.inf).astype(np.float32)
    rows: list[np.ndarray] = []
    blocks: list[np.ndarray] = []
    lags = np.arange(n_days, 0, -1, dtype=np.float32)
    for start in range(0, n, SERIES_BLOCK):  # cache-sized blocks of series
        part = slice(start, min(start + SERIES_BLOCK, n))
        # The bound per series and weekday, then per day back along the trend: a day above it
        # is more than EPISODE_DAY_Z noise sds above its model (+inf: never, not a candidate).
        log_model = np.log(factor[part].astype(np.float32))
        log_model += log_level[part, None]
        bound = log_model + (EPISODE_DAY_Z * noise[part]).astype(np.float32)[:, None]
        trend = np.multiply.outer(slope[part], lags)
        above = _by_day(bound, weekdays)
        above -= trend
        with np.errstate(invalid="ignore", divide="ignore"):  # no spend: -inf, never high
            high = (np.log(values[part]) if logs is None else logs[part]) > above
        pair = high[:, 1:] & high[:, :-1]
        known = None if flagged is None else flagged[part] & candidate[part, None]
        hit = np.flatnonzero(pair.any(axis=1) if known is None
                             else pair.any(axis=1) | known.any(axis=1))
        # A series without spend on a day since it first appeared has no continuous level to
        # measure a run against (its recent median counts those days as 0): left as it is.
        # Checked on the few series with a run only, and only their rows copied.
        found = values[start + hit]
        gaps = (columns >= first_seen[start + hit, None]) & ~(present[start + hit] & (found > 0))
        whole = ~gaps.any(axis=1)
        hit, found = hit[whole], found[whole]
        if len(hit):
            episode = np.zeros((len(hit), n_days), dtype=bool)
            episode[:, 1:] = pair[hit]
            episode[:, :-1] |= pair[hit]
            if known is not None:
                episode |= known[hit]
            found[episode] = np.exp(_by_day(log_model[hit], weekdays) - trend[hit])[episode]
            rows.append(start + hit)
            blocks.append(found)
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, n_days), dtype=values.dtype)
    return np.concatenate(rows), np.concatenate(blocks)


def _normal_level(level: np.ndarray, deseasoned: np.ndarray,
                  flagged: np.ndarray) -> np.ndarray:
    """The level a series' flagged days are put back at: the median of its last LEVEL_DAYS
    weekday-adjusted days that are not flagged (``deseasoned`` and ``flagged``: the recent
    days), where MIN_NORMAL_DAYS of them are; else ``level``. The first pass's level is lifted
    by the very days it would replace (its lookback level most: a median of weeks' means, each
    week holding an episode's days), so what it put back still held part of the episode."""
    rows = np.flatnonzero(flagged.any(axis=1))
    if not len(rows):
        return level
    days = _spending_days(np.where(flagged[rows], np.nan, deseasoned[rows])[:, -LEVEL_DAYS:])
    normal = _median(days)
    enough = (np.isfinite(days).sum(axis=1) >= MIN_NORMAL_DAYS) & (normal > 0)
    out = level.copy()
    out[rows] = np.where(enough, normal, level[rows])
    return out


MIN_NORMAL_DAYS = 5  # unflagged days of the last LEVEL_DAYS a normal level is taken from


def _episodes_over(flagged: np.ndarray, values: np.ndarray, present: np.ndarray,
                   factor: np.ndarray, weekdays: np.ndarray) -> np.ndarray | None:
    """The ``flagged`` days (verdicts.py) of the episodes that are over: the median of the
    OVER_DAYS days after a run of flagged days (at least 2 of them) came back below halfway
    from the run's median to that of the OVER_DAYS days before it (or, at the start of the
    lookback, of the series' unflagged days), all weekday-adjusted, in log space. A run that
    goes on to the last day, or whose level stayed (a level shift: the new normal, which the
    baseline must adopt), is not over. None when no episode is."""
    rows = np.flatnonzero(flagged.any(axis=1))
    if not len(rows):
        return None
    part = flagged[rows]
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.log(values[rows] / _by_day(factor[rows], weekdays))
    logs[~(present[rows] & np.isfinite(logs))] = np.nan
    normal = np.where(part, np.nan, logs)  # the days around an episode that are not its own
    edges = np.diff(np.pad(part.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    run_row, lo = np.nonzero(edges == 1)
    _, hi = np.nonzero(edges == -1)  # row-major: the ends in the same order as the starts
    n_days = part.shape[1]
    steps = np.arange(OVER_DAYS)

    def around(cols: np.ndarray) -> np.ndarray:
        inside = (cols >= 0) & (cols < n_days)
        return np.where(inside, normal[run_row[:, None], np.clip(cols, 0, n_days - 1)], np.nan)

    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: no day there, NaN
        before = np.nanmedian(around(lo[:, None] - 1 - steps), axis=1)
        after_days = around(hi[:, None] + steps)
        after = np.nanmedian(after_days, axis=1)
        columns = np.arange(n_days)[None, :]
        during = np.nanmedian(np.where((columns >= lo[:, None]) & (columns < hi[:, None]),
                                       logs[run_row], np.nan), axis=1)
        usual = np.nanmedian(normal, axis=1)[run_row]
    before = np.where(np.isnan(before), usual, before)
    over = ((np.isfinite(after_days).sum(axis=1) >= 2)
            & (after - before < 0.5 * (during - before)))
    if not over.any():
        return None
    out = np.zeros_like(flagged)
    for row, start, end in zip(run_row[over], lo[over], hi[over], strict=True):
        out[rows[row], start:end] = True
    return out


OVER_DAYS = 7  # the days after and before an episode that say whether it is over


# A day beyond this many log noise sds above the model, in a run of two or more, is an episode's
# (_without_episodes). 3, the classic outlier cut: 0.13 % of normal days, and a pair of them in
# about 1 in 10,000 normal lookbacks. 2.5 left out a little more of the public benchmark's
# episodes (F1 as shipped 0.228 against 0.226) but also runs of busy days of AR(1) noise, whose
# false alerts rose 3.38 -> 3.66 per 100 series-month (3.34 at 3).
EPISODE_DAY_Z = 3.0
# A day that scored this far above expected at the end of a run of two or more elevated days
# stood out, alert-worthy or not: its run is left out of the history like an episode's
# (verdicts.py), judged against that day's own baseline, which the run had not yet lifted.
# The same cut and the same "a run, not a single day" as the far-off runs above.
UNUSUAL_SCORE = EPISODE_DAY_Z
# Days a series' unusual_days mask remembers (bit k: k days before the row's day): 63 bits of
# an int64, the default lookback.
UNUSUAL_MEMORY = 63
UNUSUAL_KEEP = (1 << UNUSUAL_MEMORY) - 1


def _weekly(values: np.ndarray, present: np.ndarray, first_seen: np.ndarray,
            weekdays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each series' weekday factors (a column per weekday), the lookback's level, and the log
    noise with its degrees of freedom (_noise), from whole weeks: ``values`` (float32) and
    ``present`` are those weeks' days, ``first_seen`` counted from their first day.

    A block of series at a time (_week_block), so the dozens of passes over the weeks stay in
    the CPU cache and the blocks' arrays reuse the same memory: over a million series at once,
    every pass went to memory and every new array cost page faults."""
    n_series, n_days = values.shape
    weeks = n_days // 7
    factor = np.ones((n_series, 7))
    if weeks == 0:
        return factor, np.full(n_series, np.nan), *_no_noise(n_series)
    level = np.empty(n_series, dtype=np.float32)
    noise = np.empty(n_series, dtype=np.float32)
    counted = np.zeros(n_series, dtype=np.int64)
    worth = np.zeros(n_series)  # the changes' worth in whole pairs' changes (_noise)
    for start in range(0, n_series, SERIES_BLOCK):
        part = slice(start, start + SERIES_BLOCK)
        factor[part], level[part], block_noise = _week_block(
            values[part], present[part], first_seen[part], weekdays)
        if block_noise is not None:
            noise[part], counted[part], worth[part] = block_noise
    if weeks < 2:
        return factor, level, *_no_noise(n_series)
    scale = noise / MEDIAN_CHANGE_TO_SIGMA
    scale[counted < MIN_LOG_RESIDUALS] = np.nan
    return factor, level, scale, np.where(np.isnan(scale), np.nan, worth / CHANGES_PER_DF)


SERIES_BLOCK = 4096  # series per block: a block's days and weeks stay in a core's cache


def _no_noise(n_series: int) -> tuple[np.ndarray, np.ndarray]:
    """The log noise and its degrees of freedom without two weeks to compare: unknown."""
    return np.full(n_series, np.nan), np.full(n_series, np.nan)


def _week_block(
    values: np.ndarray, present: np.ndarray, first_seen: np.ndarray, weekdays: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """_weekly for one block of series: the factors, the level and _noise's answer (None with
    less than 2 weeks); the medians in float32."""
    n, n_days = values.shape
    weeks = n_days // 7
    # Laid out (week, day of the week, series): every pass below is then over contiguous rows
    # of the block's series, where a (series, ...) layout made numpy loop over 7 or 9 values
    # per series.
    days = np.ascontiguousarray(values.T).reshape(weeks, 7, n)
    seen = (np.arange(n_days)[:, None] >= first_seen).reshape(weeks, 7, n)
    week_sum, week_days = days[:, 0].copy(), seen[:, 0].astype(np.int8)
    for k in range(1, 7):
        week_sum += days[:, k]
        week_days += seen[:, k]
    full_week = week_days == 7
    with np.errstate(invalid="ignore", divide="ignore"):
        week_mean = week_sum / week_days
    # Weekday profile: each day's cost as a share of its own week's mean per day with spend,
    # median per weekday. (A share of the mean over all 7 days moved with how many of the
    # week's days happened to skip: 7/4 of a whole week's with 3 skipped. On series skipping a
    # fifth of their days at random, the expected cost's error was 0.67 noise sds, now 0.57;
    # 0.43 without skips.)
    # A weekday's share is the median over the weeks it had spend, once it had spend in
    # MIN_WEEKS_FOR_PROFILE of them (else it is a no-spend weekday: 0). Counting a day without
    # spend as a share of 0 made a series that skips a fifth of its days at random expect almost
    # nothing on a weekday that happened to skip 5 weeks in 9, and alert on its next ordinary day.
    spent = seen & np.ascontiguousarray(present.T).reshape(weeks, 7, n)
    spent_days = spent[:, 0].astype(np.int8)
    for k in range(1, 7):
        spent_days += spent[:, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        spend_mean = week_sum / spent_days
    counted = spent & (spend_mean[:, None, :] > 0)  # the days whose share of their week counts
    # Each day's share of its week's mean spend per day with spend; +inf where a day does not
    # count.
    by_week = np.full((weeks, 7, n), np.inf, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(days, spend_mean[:, None, :], out=by_week, where=counted)
    shares = _median_of_stack(by_week.reshape(weeks, 7 * n),
                              counted.sum(axis=0, dtype=np.int16).reshape(-1)).reshape(7, n)
    spent_weeks = spent.sum(axis=0, dtype=np.int16)
    few = spent_weeks < MIN_WEEKS_FOR_PROFILE
    profile = np.empty((7, n))  # a row per weekday
    profile[weekdays[:7]] = shares
    some = np.flatnonzero(few.any(axis=0))  # the series with a weekday of few weeks of spend
    if len(some):
        seen_weeks = seen[:, :, some].sum(axis=0, dtype=np.int16)
        idle = few[:, some] & (seen_weeks > 0) & _idle(spent_weeks[:, some], seen_weeks)
        part = np.where(few[:, some], np.nan, shares[:, some].astype(np.float64))
        # A weekday with too few weeks of spend to have a share of its own, but not a weekday
        # without spend: the series' usual share (while shares were of the mean over all 7
        # days, 1 was half of the others' on a series that skips half its days).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no share at all: NaN, 1 below
            usual = np.nanmean(part, axis=0)
        part = np.where(idle, 0.0, np.where(np.isnan(part), usual, part))
        profile[np.ix_(weekdays[:7], some)] = part
    profile = np.nan_to_num(profile, nan=1.0)
    # The mean over the weekdays added in weekday order, as profile.mean(axis=1) of a series
    # per row does.
    mean = profile[0].copy()
    for k in range(1, 7):
        mean += profile[k]
    mean /= 7
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = profile / mean
    factor = np.clip(np.nan_to_num(factor, nan=1.0), 0.2, 5.0)
    factor[:, full_week.sum(axis=0) < MIN_WEEKS_FOR_PROFILE] = 1.0
    # The lookback's level: the median of its full weeks' means (weeks a series fully lived).
    weekly = np.where(full_week, week_mean, np.nan).T  # a row per series
    level = np.ascontiguousarray(weekly)
    level.sort(axis=1)
    return (factor.T, _middle(level, weekly),
            _noise(days, seen, full_week) if weeks >= 2 else None)


def _idle(spent: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Which weekdays with spend in few of their weeks (``spent`` of ``seen``, a row per
    weekday) are weekdays without spend (weekends of a dev account, the days a weekly job does
    not run): those whose spend is rarer than the other weekdays' at IDLE_P (the binomial
    tail of ``spent`` or fewer weeks at the rate of the other weekdays that spent at all). A
    series that skips days at random has weekdays that spent in only 1 or 2 of 9 weeks by
    chance (9 % of them when it skips half its days): called idle, at the 0.2 factor floor,
    their next days with spend alerted, 1.7 times per series-month on such series
    (test_detection_drift.py). One that spends on a few days a month has weekdays that never
    spent in 9 weeks (4 % of them at 30 % of days), which were idle whatever the rate: 42.0
    false alerts per 100 series-month at 30 %, 6.75 with this, 1.5 with the level of
    _last_spending_days too (test_detection_drift.py). The rate is of the weekdays that
    spent, so a weekly job's other days, 0 of 9 against its day's 9 of 9, still are idle."""
    active_seen = np.where(spent > 0, seen, 0)  # the rate is of the weekdays that spend
    others = np.clip((spent.sum(axis=0) - spent)
                     / np.maximum(active_seen.sum(axis=0) - active_seen, 1), 0, 1)
    q = 1.0 - others
    n = seen.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 ** -1 where not taken
        tail = q ** n  # P(no week of spend)
        tail = tail + np.where(spent >= 1, n * others * q ** (n - 1), 0.0)
        tail = tail + np.where(spent >= 2, n * (n - 1) / 2 * others**2 * q ** (n - 2), 0.0)
    return tail < IDLE_P


# A weekday's spend is rarer than its series' other weekdays' at this binomial tail: a weekday
# without spend. Per weekday and lookback, so a series' 7 weekdays over the months of a year
# test it hundreds of times: at 0.01 series skipping 10-50 % of their days at random still
# had chance idle weekdays (5.81 false alerts per 100 series-month on the skips shape), at
# 0.001 2.91, at 0.0001 2.59. A weekend that spent in 1 of 9 weeks against weekdays that
# spend 83 % of the time has a tail of 5e-6; in 2 of 9 against 67 %, 0.0065 (then it is not
# idle: its share is the series' usual one, and its days without spend are drops).
IDLE_P = 0.001


def _noise(days: np.ndarray, seen: np.ndarray,
           full_week: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-space noise per series (the median |change|, in float32, with how many changes it
    had and what they are worth in changes of whole pairs of weeks: PAIR_WORTH), from the
    change of each weekday from one week to the next, less the trimmed mean change of that
    pair of weeks: the weekday pattern and any level change or trend cancel out, nothing is
    fitted to the same days (a fitted profile makes residuals too small), and one spike
    touches two of the changes, not the scale.
    ``days``, ``seen``: (week, day of the week, series); ``full_week``: (week, series)."""
    weeks, _, n = days.shape
    logs = np.full(days.shape, np.nan, dtype=np.float32)
    np.log(days, out=logs, where=seen & (days > 0))
    change = logs[1:] - logs[:-1]
    total, high, low = change[:, 0].copy(), change[:, 0].copy(), change[:, 0].copy()
    for k in range(1, 7):  # 6 slice operations: a reduction over a tiny axis is slow
        total += change[:, k]
        np.maximum(high, change[:, k], out=high)
        np.minimum(low, change[:, k], out=low)
    mean = (total - high - low) / 5  # NaN for a pair with a day without spend (below)
    both_full = full_week[1:] & full_week[:-1]
    mean[~both_full] = np.nan  # a pair not of two full weeks is left out
    partial = np.isnan(mean) & both_full
    spread = _partial_pairs(change, partial, days, mean) if partial.any() else None
    change -= mean[:, None, :]
    np.abs(change, out=change)  # centred on 0 by construction: the MAD needs no second pass
    if spread is None:
        # A pair's 7 changes are all NaN or none: any change not finite makes its mean NaN.
        counted = 7 * (~np.isnan(mean)).sum(axis=0)
        worth = counted.astype(np.float64)
    else:
        change *= spread[:, None, :]
        per_pair = (~np.isnan(change)).sum(axis=1)
        counted = per_pair.sum(axis=0)
        worth = PAIR_WORTH[per_pair].sum(axis=0)
    ordered = np.ascontiguousarray(change.reshape((weeks - 1) * 7, n).T)  # a row per series
    ordered.sort(axis=1)
    return _middle(ordered, None), counted, worth  # no -0.0 in absolute values


def _partial_pairs(change: np.ndarray, partial: np.ndarray, days: np.ndarray,
                   mean: np.ndarray) -> np.ndarray:
    """The pairs of weeks with a day without spend (``partial``: (pair, series)) that still
    have PAIR_MIN_CHANGES changes between days with spend: their centre, the trimmed mean of
    those changes, is written into ``mean``; returned, the factor that puts each pair's
    |changes| on the scale of a whole pair's (PAIR_SPREAD; 1 for the others). Left out, a
    series that skips a day now and then had no whole pair, so no noise, and was judged
    against the 25 % floor of a young series whatever its noise (2.41 false alerts per 100
    series-month with a fifth of the days skipped, 2.03 with this; 0.31 without skips). A series
    with a credit (a day below 0 in ``days``) keeps to whole pairs: it has no log noise, so
    its scale is in dollars, as before."""
    total = np.nan_to_num(change[:, 0], nan=0.0)
    high, low = change[:, 0].copy(), change[:, 0].copy()
    count = (~np.isnan(change[:, 0])).astype(np.int8)
    for k in range(1, 7):  # slices, as in _noise: a reduction over a tiny axis is slow
        total += np.nan_to_num(change[:, k], nan=0.0)
        np.fmax(high, change[:, k], out=high)
        np.fmin(low, change[:, k], out=low)
        count += ~np.isnan(change[:, k])
    credited = (days < 0).any(axis=(0, 1))
    use = partial & (count >= PAIR_MIN_CHANGES) & ~credited
    with np.errstate(invalid="ignore", divide="ignore"):
        mean[use] = ((total - high - low) / (count - 2))[use]
    return np.where(use, PAIR_SPREAD[count], 1.0).astype(change.dtype)


# A pair of weeks with fewer changes between days with spend has a noisier centre: with 4 of
# them the median |change - trimmed mean| is 0.688 noise sds, with 5 0.765, 6 0.809, 7 0.838
# (by simulation, 5 x 10^6 pairs each). Each pair's |changes| are multiplied by 0.838 over
# their own figure, so all are on a whole pair's scale. With 3 the centre is one of the three
# and a third of the changes are 0: left out.
PAIR_MIN_CHANGES = 4
PAIR_SPREAD = np.array([np.nan] * 4 + [1.218, 1.096, 1.035, 1.0])
# What a pair's c changes are worth in changes of whole pairs, for the degrees of freedom of the
# noise (CHANGES_PER_DF): a pair's centre from fewer changes is noisier, and all of them share
# it. Simulated with every pair of 9 weeks holding c changes (10^5 series each), the degrees of
# freedom the noise's spread implies, 1 / (2 Var(log noise)), per change were 0.650, 0.864 and
# 0.947 of a whole pair's for c = 4, 5, 6 (test_detection_drift.py re-derives them). Counted
# as whole pairs' changes, a series skipping a fifth of its days had its noise trusted 15-20 %
# more than it is worth, so its t correction was too small and it alerted more.
PAIR_WORTH = np.array([0.0] * 4 + [4 * 0.650, 5 * 0.864, 6 * 0.947, 7.0])


def _trend(values: np.ndarray, present: np.ndarray, first_seen: np.ndarray,
           weekdays: np.ndarray, factor: np.ndarray,
           log_noise: np.ndarray | None = None) -> np.ndarray:
    """Trend per day of each series, in log space: Tukey's resistant line through the median
    week of the first, middle and last third of the lookback. A week is its median
    weekday-adjusted day, so a spike does not move it and a week a level shift cuts in two is
    on one side of the shift, not between. A steady trend has equal half-slopes: where they
    agree in sign and differ by less than STEADY_SE standard errors (from ``log_noise``, the
    series' log noise sd), the line's own slope (their mean) is taken. Otherwise the smaller
    half-slope when they agree in sign and 0 when they do not (the minmod limiter): a level
    shift inside the lookback has one of them ~0, so it is not extrapolated as growth, nor is
    a ramp of the last week or two. Always taking the smaller half had a growing bill's
    expected cost lag behind it (noise makes one half smaller than the other), and growing
    series alerted. 0 without MIN_WEEKS_FOR_TREND weeks, or with a third without spend.

    ``values`` and ``present``: whole weeks of days (``first_seen`` counted from the first);
    ``weekdays``: each column's weekday; ``factor``: the weekday factors (a column a weekday);
    ``log_noise`` None (or NaN for a series): the limiter only."""
    n, n_days = values.shape
    weeks = n_days // 7
    third = weeks // 3
    if weeks < MIN_WEEKS_FOR_TREND or third == 0:
        return np.zeros(n, dtype=np.float32)
    week_median = np.empty((weeks, n), dtype=np.float32)
    columns = np.arange(n_days)
    for start in range(0, n, SERIES_BLOCK):  # blocks of series: small, cache-sized copies
        part = slice(start, min(start + SERIES_BLOCK, n))
        spent = present[part] & (columns >= first_seen[part, None])
        with np.errstate(invalid="ignore", divide="ignore"):
            days = values[part] / _by_day(factor[part], weekdays)
        days[~(spent & np.isfinite(days) & (days > 0))] = np.inf  # left out of the median
        stack = np.ascontiguousarray(days.reshape(-1, weeks, 7).transpose(2, 1, 0))
        week_median[:, part] = _median_of_stack(stack, (stack < np.inf).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.log(week_median)
    logs[~np.isfinite(logs)] = np.inf
    thirds = (range(third), range(third, weeks - third), range(weeks - third, weeks))
    left, middle, right = (
        _median_of_stack(logs[part.start:part.stop], (logs[part.start:part.stop] < np.inf)
                         .sum(axis=0)) for part in thirds)
    days_between = [7.0 * (np.mean(b) - np.mean(a)) for a, b in zip(thirds, thirds[1:],
                                                                  strict=False)]
    rise = (middle - left) / np.float32(days_between[0])
    rest = (right - middle) / np.float32(days_between[1])
    slope = np.where(rise * rest > 0, np.sign(rise) * np.fmin(np.abs(rise), np.abs(rest)), 0.0)
    if log_noise is not None:
        # rise - rest = (2 middle - left - right) / days: sqrt(6) thirds' errors over the days.
        error = (np.sqrt(6.0) * THIRD_LEVEL_SD / np.sqrt(7.0 * third) / days_between[0]
                 * log_noise)
        with np.errstate(invalid="ignore"):
            steady = (rise * rest > 0) & (np.abs(rise - rest) <= STEADY_SE * error)
        slope = np.where(steady, (rise + rest) / 2, slope)
    return np.where(np.isfinite(slope), slope, 0.0).astype(np.float32)


# The sd of a third's level (the median of its weeks' median days) for log noise of sd 1 a
# day, times the square root of the third's days: 1.41, by simulation (re-derived in
# test_detection_drift.py); a mean of the days would be 1.0, their median 1.25.
THIRD_LEVEL_SD = 1.41
# Half-slopes within this many standard errors of each other are one steady trend (a two-sided
# 95 % test: a steady trend is read as steady 19 times in 20).
STEADY_SE = 2.0


def _autocorrelation(values: np.ndarray, present: np.ndarray, first_seen: np.ndarray,
                     factor: np.ndarray, weekdays: np.ndarray,
                     log_scale: np.ndarray, logs: np.ndarray | None = None) -> np.ndarray:
    """Each series' lag-1 autocorrelation of its log noise, as far as the lookback shows it
    (0 where it does not): busy days come in runs on real bills, and a run of noise adds up in
    the CUSUM as a drift would (_drift_unit).

    From the differences of the weekday-adjusted log costs one and two days apart: for AR(1)
    noise their variances are 2 s^2 (1 - rho) and 2 s^2 (1 - rho^2), so rho = V2 / V1 - 1,
    whatever the level and its trend. Each difference is clipped at AUTOCORR_CLIP robust sds,
    so a spike or an episode in the lookback weighs like a busy day, not like its size. The
    estimate is then lowered by AUTOCORR_MARGIN standard errors (a one-sided 95 % bound):
    independent noise reads 0, not a random rho of +-0.2, and an episode of several days in
    the lookback (which is autocorrelated) takes less of the drift's sensitivity away.
    ``logs``: np.log(values), if at hand."""
    n, n_days = values.shape
    out = np.zeros(n, dtype=np.float32)
    if n_days < 3:
        return out
    columns = np.arange(n_days)
    for start in range(0, n, SERIES_BLOCK):  # blocks of series: small, cache-sized copies
        part = slice(start, min(start + SERIES_BLOCK, n))
        gaps = ~(present[part] & (columns >= first_seen[part, None]) & (values[part] > 0))
        with np.errstate(invalid="ignore", divide="ignore"):
            day_logs = ((np.log(values[part]) if logs is None else logs[part])
                        - _by_day(np.log(factor[part]), weekdays))
        bound = (AUTOCORR_CLIP * np.sqrt(2) * log_scale[part]).astype(np.float32)[:, None]
        # The squares are capped at the bound's square: the same values as the squares of the
        # differences clipped at the bound.
        square_bound = bound * bound
        any_gap = bool(gaps.any())
        if any_gap:
            day_logs[gaps] = np.nan
        sums, counts = [], []
        for lag in (1, 2):
            step = day_logs[:, lag:] - day_logs[:, :-lag]
            np.square(step, out=step)
            np.minimum(step, square_bound, out=step)  # np.clip per row took 3x as long
            if any_gap:  # a difference with a day without spend is left out
                counts.append((~(gaps[:, lag:] | gaps[:, :-lag])).sum(axis=1))
                np.nan_to_num(step, copy=False, nan=0.0)
            else:
                counts.append(np.full(len(step), step.shape[1]))
            sums.append(step.sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = (sums[1] / counts[1]) / (sums[0] / counts[0]) - 1
            rho -= AUTOCORR_MARGIN * AUTOCORR_SD / np.sqrt(counts[1])
        out[part] = np.clip(np.where(np.isfinite(rho), rho, 0.0), 0.0, AUTOCORR_MAX)
    return out


AUTOCORR_CLIP = 2.0
# The estimate's sd on independent noise is AUTOCORR_SD / sqrt(number of 2-day differences),
# by simulation (0.16 over 61 of them); test_detection_drift.py re-derives it.
AUTOCORR_SD = 1.26
AUTOCORR_MARGIN = 1.645
AUTOCORR_MAX = 0.8  # beyond, the noise is a wandering level, not runs of busy days


def _drift_unit(autocorr: np.ndarray) -> np.ndarray:
    """How much wider a run's sum of z is than under independent noise: the long-run sd
    sqrt((1 + rho) / (1 - rho)) of AR(1) noise. The CUSUMs add each day's z in this unit, so
    their false-alarm rate (cusum_score) holds on autocorrelated series too."""
    return np.sqrt((1 + autocorr) / (1 - autocorr))


def _recent_level(deseasoned: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """Median of the LEVEL_DAYS weekday-adjusted days before the last ``excluded`` ones (of
    the days with spend among them, where one had spend: _spending_days); where those days
    hold fewer than LEVEL_DAYS with spend, of the last LEVEL_DAYS days with spend in the
    recent window (_last_spending_days)."""
    width = deseasoned.shape[1]
    if width == 0:
        return np.full(deseasoned.shape[0], np.nan)
    if not excluded.any():
        last = deseasoned[:, -min(LEVEL_DAYS, width):]
        sparse = ~(np.isfinite(last) & (last != 0)).all(axis=1)
        if not sparse.any():
            return _median(last)
        level = np.empty(len(last), dtype=last.dtype)  # as _median's: its neighbours' alike
        level[~sparse] = _median(last[~sparse])
        level[sparse] = _median(_last_spending_days(deseasoned[sparse], width))
        return level
    return _median(_last_spending_days(deseasoned, width - excluded)).astype(np.float64)


def _no_spend_is_normal(values: np.ndarray, present: np.ndarray, first_seen: np.ndarray,
                        thr: float) -> np.ndarray:
    """Whether D without spend would be within each series' normal range: a run of days
    without spend as long as the one before D, and D, is no rarer at the series' rate of days
    without spend over the lookback than a day beyond the score threshold (the same tail as
    ``lower`` and ``upper``). An every-other-day job's off days were drops (and alerted as
    such with ``alert_on_drops``, 1,149 per 100 series-month); a daily service that stops is
    one from its first day without spend, or from its third if it had skipped one day of
    the lookback before."""
    out = np.zeros(len(present), dtype=bool)
    n_days = present.shape[1]
    # The series with a day without spend (no row, or $0): one pass over the costs, no masks.
    some = ~present.all(axis=1) | (np.count_nonzero(values, axis=1) < n_days)
    rows = np.flatnonzero(some & (first_seen < n_days))
    if not len(rows):
        return out
    spend = (present[rows] & (values[rows] != 0)
             & (np.arange(n_days)[None, :] >= first_seen[rows, None]))
    seen = n_days - first_seen[rows]
    quiet = _days_since_spend(spend)
    # The rate of days without spend before that run: counting the run in, a service that
    # stopped 2 days ago would take its own stop for its habit.
    before = np.maximum(seen - quiet, 1)
    missing = (before - spend.sum(axis=1)) / before
    with np.errstate(divide="ignore"):
        out[rows] = missing ** (quiet + 1) >= NormalDist().cdf(-thr)
    return out


def _days_since_spend(spend: np.ndarray) -> np.ndarray:
    """Each row's run of days without spend up to D (``spend``: a row per series, D's day
    after the last column); the whole width for a row without any."""
    return np.where(spend.any(axis=1), np.argmax(spend[:, ::-1], axis=1), spend.shape[1])


def _sporadic(values: np.ndarray, first_seen: np.ndarray, factor: np.ndarray,
              slope: np.ndarray, weekdays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The whole lookback of series with few days of spend in the recent window, weekday- and
    trend-adjusted (NaN before a series was seen), and which of them spend now and then
    rather than stopped: their run of days without spend up to D is not rare at their rate of
    spend over the lookback (probability of such a run above IDLE_P). A job run on 5 % of
    days goes 28 days without spend 1 time in 4; a daily service that stopped 28 days ago,
    having spent on 35 of its 63 days, 1 time in 10^10. (The rate before the run instead
    made runs of a job run on 5 % of days look rare: 5.88 false alerts per 100 series-month
    on the sporadic shape against 1.50.)"""
    n, n_days = values.shape
    columns = np.arange(n_days)
    seen = columns[None, :] >= first_seen[:, None]
    share = _normal_share(factor, slope, weekdays, columns, n_days)
    spend = seen & np.isfinite(values) & (values != 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        days = np.where(seen, values, np.float32(np.nan)) / share
    rate = spend.sum(axis=1) / np.maximum(seen.sum(axis=1), 1)
    with np.errstate(divide="ignore"):
        run_p = (1 - rate) ** _days_since_spend(spend)
    return days, spend.any(axis=1) & (run_p >= IDLE_P)


def _last_spending_days(days: np.ndarray, end: np.ndarray | int,
                        count: int = LEVEL_DAYS) -> np.ndarray:
    """``days`` (weekday-adjusted costs; NaN: not counted) reduced to each row's last ``count``
    days with spend before column ``end``, as ``count`` columns (NaN where fewer); a row
    without any keeps the ``count`` days before ``end``, whose zeros count (a series that
    stopped). Of LEVEL_DAYS, the same days as _spending_days over the LEVEL_DAYS before
    ``end`` where those all had spend. A service that spends on a few days a month (a job run
    now and then) had few days with spend in its last 14 days, none 1 time in 10 at 15 % of
    days, and then a level of zeros or of its weekly mean: each ordinary day it spent was
    news. On series spending on 5-30 % of their
    days (benchmarks/shapes.py ``sporadic``, 4 draws): 42.6 false alerts per 100
    series-month once _idle no longer took their weekdays that happened not to spend for
    weekdays without spend, 10.4 with this (106.5 before both, 86.6 with this alone)."""
    width = days.shape[1]
    cols = np.arange(width)[None, :]
    end_col = np.asarray(end).reshape(-1, 1)
    spend = np.isfinite(days) & (days != 0)
    if np.any(end_col < width):
        spend &= cols < end_col
    # Days with spend counted back from the end: 1 for the last, 2 for the one before, ...
    ahead = np.cumsum(spend, axis=1, dtype=np.int16)
    back = ahead[:, -1:] - ahead + spend
    slot = np.where(spend & (back <= count), count - back, -1)  # its column in the answer
    idle = np.flatnonzero(ahead[:, -1] == 0)  # no day with spend: its last days' zeros count
    if len(idle):
        start = (end_col[idle] if end_col.shape[0] > 1 else end_col) - count
        slot[idle] = np.where((cols >= start) & (cols < start + count), cols - start, -1)
    out = np.full((len(days), count), np.nan, dtype=days.dtype)
    rows, at = np.nonzero(slot >= 0)
    out[rows, slot[rows, at]] = days[rows, at]
    return out


def _spending_days(days: np.ndarray) -> np.ndarray:
    """``days`` (weekday-adjusted costs, NaN: not counted) without their days of no spend, in
    the rows with a day of spend: a series that skips days now and then is expected to cost,
    on a day it spends, what its days with spend cost. Counted as $0, a fifth of days skipped
    put the median near the positive days' 37th percentile, and at 7 skips in 14 days (1
    window in 86) half-way to nothing, so its next ordinary day alerted (8.25 false alerts
    per 100 series-months on series skipping a fifth of their days at random; 3.56 without;
    2.06 once their noise was estimated too, _partial_pairs; test_detection_drift.py). Left
    out only where 5 of the 14 days had spend, a series skipping half its days fell below
    that in 1 window in 11 and alerted on its next day with spend (52.5 false alerts per 100
    series-months on the skips shape at 50 %, 4 draws; 13.0 with any day; 8.6 with IDLE_P
    at 0.001, not 0.01). A series that stopped (no day with spend) still counts
    its zeros, as before: its drop rows are unchanged (35 days of them, the lookback's level
    holding as in the README's Known limits). Credits (below 0) stay."""
    zero = days == 0
    rows = np.flatnonzero(zero.any(axis=1))
    if not len(rows):
        return days
    spent = (np.isfinite(days[rows]) & ~zero[rows]).sum(axis=1)
    rows = rows[spent > 0]
    if not len(rows):
        return days
    out = days.copy()
    out[rows] = np.where(zero[rows], np.nan, days[rows])
    return out


def _accepted_level(deseasoned: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Median of the last LEVEL_DAYS weekday-adjusted days from column ``start`` of each row
    on (the accepted episode's days: its level is the new normal)."""
    width = deseasoned.shape[1]
    cols = np.arange(width)[None, :]
    keep = (cols >= start[:, None]) & (cols >= width - LEVEL_DAYS)
    return _median(_spending_days(np.where(keep, deseasoned, np.nan)))


def _scale(expected: np.ndarray, has_log: np.ndarray, log_scale: np.ndarray, floor: np.ndarray,
           active_r: np.ndarray, model_r: np.ndarray, config: DetectionConfig) -> np.ndarray:
    """The day's scale in $: from the log noise where costs are positive, else (credits,
    refunds) the MAD of the recent dollar residuals."""
    linear_scale = np.zeros(len(expected))
    if (~has_log).any():
        rows = ~has_log
        residuals = active_r[rows] - model_r[rows]
        residuals -= _median(residuals)[:, None]
        np.abs(residuals, out=residuals)
        linear_scale[rows] = np.nan_to_num(MAD_TO_SIGMA * _median(residuals, scratch=True),
                                           nan=0.0)
    scale = np.where(has_log, expected * np.expm1(np.nan_to_num(log_scale)), linear_scale)
    return np.maximum(np.maximum(scale, floor * np.abs(expected)), _abs_floor(config))


def _cusums(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one-sided CUSUMs with reference values CUSUM_KS of standardised residuals (days in
    columns), each day's step as _cusum_step's."""
    # Each day's capped z made once for both, a day per contiguous row, and the steps in place.
    capped = np.ascontiguousarray(z.T)
    np.copyto(capped, 0.0, where=np.isnan(capped))  # an infinite z steps as the cap or 0 would
    np.minimum(capped, CUSUM_CAP, out=capped)
    totals = []
    for k in CUSUM_KS:
        total = np.zeros(z.shape[0], dtype=z.dtype)
        for day in capped:
            total += day
            total -= k
            np.maximum(total, 0.0, out=total)
        totals.append(total)
    return totals[0], totals[1]


def _cusum_step(before: np.ndarray, z: np.ndarray, k: float) -> np.ndarray:
    """A CUSUM after a day of standardised residual ``z`` (capped at CUSUM_CAP)."""
    return np.maximum(before + np.minimum(np.nan_to_num(z, nan=0.0), CUSUM_CAP) - k, 0.0)


def _drift_score(small: np.ndarray, large: np.ndarray) -> np.ndarray:
    """The stronger evidence of the two CUSUMs, each as a calibrated z."""
    return np.fmax(cusum_score(small, CUSUM_KS[0]), cusum_score(large, CUSUM_KS[1]))


def cusum_score(total: np.ndarray, k: float = CUSUM_KS[0]) -> np.ndarray:
    """A CUSUM value as the one-day z whose normal tail is the same false-alarm rate.

    Siegmund's approximation gives the mean number of in-control days before a CUSUM with
    reference value k first reaches h: ARL(h) = (e^(2kb) - 2kb - 1) / (2k^2), b = h + 1.166.
    Reaching h is therefore about as rare as a day beyond the z with tail 1/ARL(h), so one
    threshold means one false-alarm rate for the day's jump and for the run's drift.
    """
    b = 2 * k * (np.maximum(total, 0.0) + 1.166)
    with np.errstate(over="ignore"):
        log_arl = np.where(b > 30, b, np.log(np.maximum(np.expm1(b) - b, 1e-12))) \
            - np.log(2 * k ** 2)
    log_arl -= np.log(CUSUM_DAY_SHARE.get(k, 1.0))
    return _z_of_log_tail(-np.maximum(log_arl, np.log(2.0)))


def _z_of_log_tail(log_p: np.ndarray) -> np.ndarray:
    """z with upper normal tail exp(log_p) (p <= 0.5), by Abramowitz & Stegun 26.2.23
    (error below 4.5e-4), computed from log p so tiny tails do not underflow."""
    t = np.sqrt(-2.0 * log_p)
    return t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (
        1 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t ** 3)


def _phase_days(day: date, months: int) -> date:
    """The day ``months`` months before ``day`` at the same place in its month: counted from
    the month's start in the first half of the month, from its end in the second, so the last
    days of a month meet the last days of a shorter one (Mar 29 meets Feb 26, not Feb 28)."""
    length = calendar.monthrange(day.year, day.month)[1]
    if day.day <= length // 2:
        return _months_back(day, months)
    return _months_back(day, months, month_end=True) - timedelta(days=length - day.day)


def _median_of_three(days: np.ndarray) -> np.ndarray:
    """Row medians of a (rows, 3) array, NaN where a day is: the largest pairwise minimum."""
    a, b, c = days[:, 0], days[:, 1], days[:, 2]
    return np.maximum(np.maximum(np.minimum(a, b), np.minimum(a, c)), np.minimum(b, c))


def _month_phase(values: np.ndarray, present: np.ndarray, first: date, day: date,
                 level: np.ndarray, factor: np.ndarray, weekdays: np.ndarray,
                 slope: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
    """Log factor of ``day``'s place in the month: where the same few days of last month and
    of the month before both stood apart from the level around them, by about as much, the
    series has a monthly cycle (volume tiers that reset on the 1st, a month-end close's batch
    jobs) and ``day`` is expected to stand apart too. 0 elsewhere.

    Each month's effect is the median of the three days around its date against the median of
    two weeks of that month, in the weekday-adjusted log cost. Last month's is measured
    against the two weeks before its days, as today's level is the two weeks before today, and
    is the one taken. The month before's is measured against the two weeks after (the weeks
    before it are out of the lookback) and only confirms. Both must be above their weeks, by
    PHASE_Z standard errors together (the z of their sum), PHASE_EACH_Z each, and within
    PHASE_LIKE of each other. PHASE_Z each left noisy series' closes and tiers unlearned; at
    1.5 each, ramps that came every 30 days (anomalies, flagged each time) were taken for a
    cycle. Only rises count: a dip against the weeks after it is what the start of a tier
    cycle looks like from its end. A charge on one day is not a cycle (the median of three
    leaves it out: _recurring)."""
    n_series, n_days = values.shape
    phase = np.zeros(n_series)
    noise = np.nan_to_num(log_scale, nan=np.inf)

    def adjusted(rows: np.ndarray | slice, cols: np.ndarray,
                 dtype: type[np.floating] = np.float32) -> np.ndarray:
        """Weekday- and trend-adjusted costs of ``rows`` on the days ``cols`` (NaN where
        outside the matrix, absent, or on a weekday whose normal share is 0)."""
        inside = (cols >= 0) & (cols < n_days)
        c = cols[inside]
        out = np.full((len(factor[rows]), len(cols)), np.nan, dtype=dtype)
        share = _normal_share(factor[rows], slope[rows], weekdays, c, n_days, dtype)
        at = np.ix_(rows, c) if isinstance(rows, np.ndarray) else (rows, c)
        ok = present[at] & (share > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, inside] = np.where(ok, values[at].astype(dtype) / share, np.nan)
        return out

    def log_days(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The log of ``adjusted`` in float64 (NaN where not positive)."""
        days = adjusted(rows, cols, np.float64)
        with np.errstate(invalid="ignore"):
            return np.log(np.where(days > 0, days, np.nan))

    centres = [(_phase_days(day, months) - first).days for months in (1, 2)]
    if centres[1] - 1 < 0:
        return phase
    windows = [np.array([c - 1, c, c + 1]) for c in centres]

    # First, cheaply: both windows above today's level by ROUGH noise sd (an absent day fails).
    bound = (level * np.exp(ROUGH * np.minimum(noise, 50.0))).astype(np.float32)
    rough = (level > 0) & np.isfinite(noise)
    for w in windows:
        rough &= _median_of_three(adjusted(slice(None), w)) >= bound
    rows = np.flatnonzero(rough)
    if not len(rows):
        return phase
    effects = []
    for c, w, after in zip(centres, windows, (False, True), strict=True):
        start = c + 2 if after else c - 1 - LEVEL_DAYS
        around = log_days(rows, np.arange(start, start + LEVEL_DAYS))
        enough = np.isfinite(around).sum(axis=1) >= MIN_PHASE_DAYS
        effect = _median_of_three(log_days(rows, w)) - _median(around, scratch=True)
        effects.append(np.where(enough, effect, np.nan))
    first_effect, second_effect = effects
    se = PHASE_SE * noise[rows]
    small = np.minimum(first_effect, second_effect)  # NaN (a month not measured) fails
    large = np.maximum(first_effect, second_effect)
    cycle = ((small + large >= PHASE_Z * np.sqrt(2) * se) & (small >= PHASE_EACH_Z * se)
             & (large <= PHASE_LIKE * small))
    phase[rows[cycle]] = first_effect[cycle]
    return phase


PHASE_Z = 3.0  # standard errors the two months' effects together must pass
PHASE_EACH_Z = 2.0  # and each month's own
ROUGH = 0.5  # noise sd both months must be above today's level by to be looked at closer
# Standard error of a month's effect in noise sd: the median of 3 days (0.67) and of ~14
# (0.33), independent.
PHASE_SE = float(np.hypot(0.67, 0.33))
PHASE_LIKE = 2.0  # the two months' effects within this factor of each other
MIN_PHASE_DAYS = 10  # days with spend of the two weeks a month's effect is measured against


class _PastDays:
    """Past days of some series judged as a monthly charge would be: each day's cost above
    (``sign`` 1) or below (-1) its weekday's normal, whether that would stand out today
    (``day``), and whether it also stood out on its own day (``own``: a busy weekday swings by
    more dollars than a quiet one; today's spread in proportion to the two days' normal
    costs). Each column is worked out once."""

    def __init__(self, values: np.ndarray, present: np.ndarray, level: np.ndarray,
                 factor: np.ndarray, weekdays: np.ndarray, expected: np.ndarray,
                 scale: np.ndarray, slope: np.ndarray) -> None:
        self.values, self.present, self.level, self.factor = values, present, level, factor
        self.weekdays, self.expected, self.scale, self.slope = weekdays, expected, scale, slope
        self.n_days = values.shape[1]
        self.none = np.zeros(len(expected), dtype=bool)
        self._columns: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._days: dict[tuple[int, int], np.ndarray] = {}
        self._own: dict[tuple[int, int], np.ndarray] = {}
        self._lone: dict[tuple[int, int], np.ndarray] = {}

    def _column(self, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(extra, spread, normal) of column ``c``, inside the matrix."""
        if c not in self._columns:
            normal = self.level * _normal_share(self.factor, self.slope, self.weekdays,
                                                np.array([c]), self.n_days, np.float64)[:, 0]
            spread = np.maximum(self.scale, RELATIVE_SCALE_FLOOR * np.abs(normal))
            self._columns[c] = self.values[:, c] - normal, spread, normal
        return self._columns[c]

    def normal(self, c: int) -> np.ndarray:
        """Column ``c``'s normal cost (inside the matrix)."""
        return self._column(c)[2]

    @functools.cached_property
    def _log_noise(self) -> np.ndarray:
        """Today's spread as log noise (floored), the same for every column a day sinks in."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.log1p(np.maximum(self.scale / self.expected, RELATIVE_SCALE_FLOOR))

    def day(self, c: int, sign: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(extra, stood) of column ``c`` (nothing outside the matrix). A day sinks in log
        terms, as drops are judged: in $ a noisy series' spread can be most of its cost."""
        if not 0 <= c < self.n_days:
            return np.zeros(len(self.expected)), self.none
        extra, spread, normal = self._column(c)
        if (c, sign) not in self._days:
            if sign > 0:
                bar = RECURRING_MARGIN * spread
            else:
                bar = np.where((self.expected > 0) & (normal > 0),
                               -np.expm1(-RECURRING_MARGIN * self._log_noise) * normal, np.inf)
            self._days[c, sign] = self.present[:, c] & (sign * extra > bar)
        return extra, self._days[c, sign]

    def own(self, c: int, sign: int = 1) -> np.ndarray:
        """Column ``c`` stood out on its own day's spread too (a sunk day's bar is its own
        day's already)."""
        if (c, sign) not in self._own:
            extra, stood = self.day(c, sign)
            if 0 <= c < self.n_days and sign > 0:
                positive = self.expected > 0
                ratio = self.normal(c) / np.where(positive, self.expected, 1)
                self._own[c, sign] = stood & (extra > RECURRING_MARGIN * np.where(
                    positive, self.scale * ratio, 0))
            else:
                self._own[c, sign] = stood
        return self._own[c, sign]

    def lone(self, c: int, sign: int = 1) -> np.ndarray:
        """Day ``c`` stood out on its own day, alone (not in a run of days that stood out by
        about as much, BILLING_LIKE): the evidence asked of a charge billed a day off its
        date. A neighbour that stood out by far less is the series' noise, not the charge's
        second day."""
        if (c, sign) not in self._lone:
            extra = sign * self.day(c, sign)[0]
            in_run = self.none
            for next_to in (c - 1, c + 1):
                in_run = in_run | (self.own(next_to, sign)
                                   & _alike(extra, sign * self.day(next_to, sign)[0]))
            self._lone[c, sign] = self.own(c, sign) & ~in_run
        return self._lone[c, sign]


def _recurring(values: np.ndarray, present: np.ndarray, first: date, day: date,
               level: np.ndarray, factor: np.ndarray, weekdays: np.ndarray,
               expected: np.ndarray, scale: np.ndarray,
               slope: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                           np.ndarray]:
    """Expect last month's surcharge again when it is known to recur: the series bills only on
    such days, or it stood out the month before too. Each past day is judged against the model
    of its own weekday, so weekly cycles are not mistaken for monthly charges, and a one-off
    spike last month neither hides a spike nor fakes a drop this month. Last month's day is the
    same date or, on a month's last day, last month's last day (_billing_days).

    Invoices are posted a day late now and then: a charge last month a day off today's date is
    expected too when it was a lone day, the month before had one of like size within a day of
    its date, and it is not billed yet this month. A day before last month's date only where
    the charge moved (the month before's was not on that date too): after a late month, the
    charge is back on its date, but one billed on the 15th every month is not due on the 14th.
    Also returned: where the charge may as well come tomorrow (on its date; a day early), so a
    day without it is not a drop; on the last day it can come (a day late), it is. And
    ``early``: a charge due tomorrow (on that date both months, lone and alike) that may
    come a day early; it is not in the expected cost, score() takes it where today's excess
    is that charge (cost_baselines.early_cost).

    Else a job run every other week (a fortnightly full backup, a payroll run), expected when
    it stood out alone on today's weekday 14 and 28 days ago, as much both times (at the two
    days' mean $), or, a run skipped, 3 of the 4 times 14 to 56 days ago (two would meet by
    chance in a history dense with events): the weekday
    profile is a median over 9 weeks, so it holds such a job in none or all of its weeks, and
    the others alerted as spikes, every other week. Its weeks off likewise: where the profile
    holds the job (it ran in 5 of the 9 weeks), a day that sank alone 14, 28, 42 and 56 days
    ago (the 4 weeks off in the profile's 9), as much each time, while the weeks between did
    not, is expected at the share of its normal cost those days kept (a negative $, and not
    loose). All four are asked: refunds on a few % of days meet twice by chance, and a noisy
    series alternates three times now and then. Returned too: the job's $ (its part of the
    expected cost, which is not a monthly one). Only the few series with a day that stood out
    last month near today's date, or sank or stood out 14 days ago, or stood out 28 days
    ago, are worked on."""
    billing = _billing_days(day)
    last_month, month_before = _months_back(day, 1), _months_back(day, 2)
    n_days = values.shape[1]
    near = [(on - first).days for on, _ in billing] + [
        (last_month - first).days + offset for offset in (-1, 1)] + [n_days - 14]
    everyone = _PastDays(values, present, level, factor, weekdays, expected, scale, slope)
    candidate = everyone.day(n_days - 14, -1)[1] | everyone.day(n_days - 28)[1]
    for c in near:
        candidate |= everyone.day(c)[1]
    rows = np.flatnonzero(candidate)
    past = _PastDays(values[rows], present[rows], level[rows], factor[rows], weekdays,
                     expected[rows], scale[rows], slope[rows])

    def col(on: date, shift: int = 0) -> int:
        return (on - first).days + shift

    none = past.none
    found, loose = none.copy(), none.copy()
    charge = np.zeros(len(rows))  # the charge expected today
    early = np.zeros(len(rows))  # a charge due tomorrow, if it comes today

    for last, before in billing:
        extra, stood_out = past.day(col(last))
        confirmed = past.day(col(before))[1].copy()
        for shift in (-1, 1):  # the month before billed a day off its date, as much
            other = past.day(col(before, shift))[0]
            confirmed |= (past.lone(col(last)) & past.lone(col(before, shift))
                          & _alike(extra, other))
        recurring = stood_out & ((level[rows] == 0) | confirmed) & ~found
        charge[recurring] = extra[recurring]
        loose |= recurring
        found |= recurring
    for offset in (-1, 1):  # last month's charge came a day before / after today's date
        c = col(last_month, offset)
        extra = past.day(c)[0]
        confirmed = none.copy()
        # A day early only where the charge moved: the month before's was not on last
        # month's date too (a charge billed on the 15th each month is not due on the 14th).
        for shift in (-1, 0, 1) if offset < 0 else (-1, 0):
            other = past.day(col(month_before, shift))[0]
            confirmed |= past.lone(col(month_before, shift)) & _alike(extra, other)
        recurring = past.lone(c) & ((level[rows] == 0) | confirmed) & ~found
        # Already billed this month: its date (and the day before it) up to yesterday.
        billed = none.copy()
        for back in range(1, 1 - offset + 1):
            other, stood = past.day(n_days - back)
            billed |= stood & _alike(extra, other)
        due = recurring & ~billed
        charge[due] = extra[due]
        loose |= due & (offset > 0)
        found |= recurring
        if offset > 0:  # due tomorrow, as it was both months: it may come a day early
            other = past.day(col(month_before, 1))[0]
            soon = (past.lone(c) & past.lone(col(month_before, 1)) & _alike(extra, other)
                    & ~found)
            early[soon] = extra[soon]
    fortnightly = none.copy()
    # Runs: the last two fortnights, or (one run skipped) three of the last four, alike.
    runs = [n_days - back for back in (14, 28, 42, 56)]
    for seen in ((0, 1), (0, 2, 3), (1, 2, 3)):
        extras = [past.day(runs[i])[0] for i in seen]
        ran = (charge == 0) & ~fortnightly
        for i in seen:
            ran &= past.lone(runs[i])
        for extra in extras[1:]:
            ran &= _alike(extras[0], extra)
        charge[ran] = np.median(extras, axis=0)[ran]
        loose |= ran
        fortnightly |= ran
    # Weeks off: the 4 in the profile's 9 weeks sank alone, alike, and the weeks between not.
    extra = past.day(runs[0], -1)[0]
    every_other = past.lone(runs[0], -1) & (charge == 0) & ~fortnightly
    for c in runs[1:]:
        every_other &= past.lone(c, -1) & _alike(-extra, -past.day(c, -1)[0])
    for c in runs:
        every_other &= ~past.own(c + 7, -1)
    with np.errstate(invalid="ignore", divide="ignore"):  # the share of normal they kept
        left = np.median([past.values[:, c] / past.normal(c) for c in runs], axis=0)
    every_other &= np.isfinite(left) & (left >= 0)
    charge[every_other] = (expected[rows] * (left - 1))[every_other]
    fortnightly |= every_other
    found |= fortnightly
    expected_out, scale_out = expected.copy(), scale.copy()
    charged = rows[found]
    expected_out[rows] += charge
    scale_out[charged] = np.maximum(scale[charged], CHARGE_SPREAD * np.abs(charge[found]))
    loose_out = np.zeros(len(expected), dtype=bool)
    loose_out[rows[loose]] = True
    job = np.zeros(len(expected))
    job[rows[fortnightly]] = charge[fortnightly]
    early_out = np.zeros(len(expected))
    early_out[rows] = early
    return expected_out, scale_out, loose_out, job, early_out


BILLING_LIKE = 2.0  # a charge billed a day off its date is this close in size to last month's
CHARGE_SPREAD = 0.1  # a recurring charge's own spread: the day's scale is at least this of it


def _alike(extra: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Two charges within BILLING_LIKE of each other."""
    return (other < BILLING_LIKE * extra) & (extra < BILLING_LIKE * other)


def _pct(excess: np.ndarray, expected: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(expected > 0, excess / expected * 100.0, np.inf)


def _z(actual: np.ndarray, expected: np.ndarray, log_scale: np.ndarray,
       scale: np.ndarray, noise_df: np.ndarray) -> np.ndarray:
    """Surprise as a calibrated z: in log space where costs are positive (a t over the
    estimated scale, turned into the normal z of the same tail), else in dollars."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = _t_to_z(_log_ratio(actual, expected) / (log_scale * LEVEL_ERROR), noise_df)
        linear = ~np.isfinite(z)
        if linear.any():  # credits, refunds, days without spend: only those are divided
            shape = np.broadcast_shapes(actual.shape, expected.shape, scale.shape)
            dollars = np.broadcast_to(actual - expected, shape)
            z[linear] = dollars[linear] / np.broadcast_to(scale, shape)[linear]
    return z


# The expected cost is a median of LEVEL_DAYS days: its own error adds pi/2 / LEVEL_DAYS of a
# day's variance to a residual.
LEVEL_ERROR = float(np.sqrt(1 + np.pi / 2 / LEVEL_DAYS))


def _t_to_z(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """The normal z with the same tail as Student's t with ``df`` degrees of freedom (Wallace,
    1959: accurate to a few hundredths in the tails from df ~ 5); unchanged where df is NaN.
    Computed in t's precision (float32 over the days before D, a million series at a time)."""
    df = np.asarray(df, dtype=t.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = t * t
        z /= df
        np.log1p(z, out=z)
        z *= df
        np.sqrt(z, out=z)
        z *= (8 * df + 1) / (8 * df + 3)
        np.copysign(z, t, out=z)
    no_df = ~np.isfinite(df)
    if no_df.any():
        z = np.where(no_df, t, z)
    return z


def _material(excess: np.ndarray, expected: np.ndarray, config: DetectionConfig) -> np.ndarray:
    """Big enough to act on: both the $ and the % bar."""
    return (excess >= config.min_impact) & (_pct(excess, expected) >= config.min_pct_change)


def _elevated(excess: np.ndarray, expected: np.ndarray, z: np.ndarray,
              config: DetectionConfig) -> np.ndarray:
    """Still above normal: one robust std dev and half the % bar, so noise inside an episode
    does not end it (and re-alert it the next day). No $ bar: an episode's money is counted
    over its days, so a small daily overrun still adds up."""
    return (excess > 0) & (z >= 1.0) & (_pct(excess, expected) >= 0.5 * config.min_pct_change)


def score(merged: pd.DataFrame, config: DetectionConfig,
          previous: pd.DataFrame | None = None,
          bars: pd.DataFrame | None = None,
          drift_before: pd.DataFrame | None = None) -> pd.DataFrame:
    """Classify each (day, series): spike, sustained, level_shift, new_spend, drop or "" (a
    normal day). Every row is returned, scored, so cost_scores can keep them all.

    Days are walked in order so an episode is alerted once: ``previous`` holds the anomalies of
    the day before the first one (from the table), so rerunning a single day knows which
    episodes were already open. ``bars``: score bars raised by not_anomaly feedback per series
    and kind (feedback.raised_bars); the bar each row had to pass is its ``threshold``.
    ``drift_before``: the scores of the day before the first one (SERIES_KEY, cusum,
    cusum_large), whose drift statistics each series' CUSUMs carry on from (_Drift).
    """
    thr = config.score_threshold
    bar = bar_columns(merged, bars, thr)
    actual = merged["actual_cost"].to_numpy(dtype=float)
    history = merged["history_days"].fillna(0).to_numpy()
    is_new = history == 0
    expected = np.where(is_new, 0.0, merged["expected_cost"].fillna(0).to_numpy(dtype=float))
    scale = merged["scale"].fillna(_abs_floor(config)).to_numpy(dtype=float)
    log_scale = merged["log_scale"].to_numpy(dtype=float, na_value=np.nan)
    noise_df = merged["noise_df"].to_numpy(dtype=float, na_value=np.nan)
    run = merged["elevated_days"].fillna(0).to_numpy().astype(np.int64)
    prior_actual = merged["prior_actual"].fillna(0).to_numpy(dtype=float)
    prior_expected = merged["prior_expected"].fillna(0).to_numpy(dtype=float)
    cusum_before = merged["cusum"].fillna(0).to_numpy(dtype=float)
    cusum_large_before = merged["cusum_large"].fillna(0).to_numpy(dtype=float)
    # A monthly charge due tomorrow that came today: today's excess is that charge, on a day
    # alone as a charge is (not the next of a run of days above normal by about as much: a
    # level shift the day before a charge's date). Older files: none.
    if "early_cost" in merged:
        early = merged["early_cost"].fillna(0).to_numpy(dtype=float)
        excess = actual - expected
        with np.errstate(invalid="ignore", divide="ignore"):
            run_excess = (prior_actual - prior_expected) / run
        came = (early > 0) & _alike(excess, early) & ~((run > 0) & _alike(excess, run_excess))
        expected = np.where(came, expected + early, expected)
        scale = np.where(came, np.maximum(scale, CHARGE_SPREAD * early), scale)
    # "New" only means something once the table holds a month of history for that day.
    warm = (merged.groupby("usage_date")["history_days"].transform("max").fillna(0)
            .to_numpy() >= WARM_HISTORY_DAYS)

    impact = actual - expected
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(expected > 0, impact / expected * 100.0, np.nan)
    z = _z(actual, expected, log_scale, scale, noise_df)
    # The day's jump opens a spike when nothing was elevated before it, else a sustained rise.
    jump_bar = np.where(run == 0, bar["spike"], bar["sustained"])
    hard = ~is_new & _material(impact, expected, config) & (z >= jump_bar)
    elevated = ~is_new & _elevated(impact, expected, z, config)
    # Drift: the evidence of a run of small rises, on the same scale as the day's z, and the
    # money the episode has cost so far (a small overrun alerts once it adds up to min_impact).
    # The CUSUMs are carried from day to day in the walk below (_Drift).
    days = usage_days(merged)
    run_cost = np.where(run > 0, prior_actual - prior_expected, 0.0) + impact
    autocorr = (np.clip(merged["autocorr"].fillna(0.0).to_numpy(dtype=float), 0.0, AUTOCORR_MAX)
                if "autocorr" in merged else np.zeros(len(merged)))  # older files: independent
    drift = _Drift(z / _drift_unit(autocorr), cusum_before, cusum_large_before, is_new,
                   elevated & (run_cost >= config.min_impact), bar["sustained"], drift_before)
    # A new series has no spread to compare with: its score says how far past the $ bar it is.
    new_score = impact / max(config.min_impact, _abs_floor(config)) * thr
    new_spend = is_new & warm & (impact >= config.min_impact) & (new_score >= bar["new_spend"])
    # Below the normal range too: a service that spends now and then has 0 in it (its days
    # without spend are not drops).
    lower = (merged["lower"].to_numpy(dtype=float, na_value=np.inf) if "lower" in merged
             else np.full(len(merged), np.inf))
    # Once open, a drop goes on while the day is still below normal, as a rise's episode does
    # above it: noise that lifted one day out of it ended it, and the next low day opened it
    # again (a resize down alerted 7 times in 4 weeks).
    low = ~is_new & (history >= YOUNG_DAYS) & _elevated(-impact, expected, -z, config)
    drop = (low & (z <= -bar["drop"]) & (actual < lower) & (-impact >= config.min_impact)
            & (np.nan_to_num(-pct, nan=np.inf) >= config.min_pct_change))

    unusual = _Unusual(z, elevated, ~is_new & (impact > 0) & (run >= 1), run)
    walk = _walk_episodes(merged, previous, days, elevated, hard, drift,
                          new_spend, drop, low, run, hard & (run == 0), impact, unusual)
    continuing, opens, start, opened_as, dropped, drop_opens, peak = walk

    kind = np.full(len(merged), "", dtype=object)
    kind[opens] = np.where(opened_as[opens] == OPENED_SPIKE, "spike", "sustained")
    kind[continuing] = np.where(opened_as[continuing] == OPENED_SPIKE, "level_shift",
                                "sustained")
    kind[new_spend] = "new_spend"
    kind[dropped & ~continuing & ~opens] = "drop"
    # The bar the row had to pass for its kind (a normal day: that of a spike).
    threshold = np.select([kind == "sustained", kind == "new_spend", kind == "drop"],
                          [bar["sustained"], bar["new_spend"], bar["drop"]], bar["spike"])

    out = merged.copy(deep=False)  # copy-on-write: the columns set below are new, not merged's
    out["expected_cost"] = expected
    out["impact"] = impact
    out["pct_change"] = pct
    out["score"] = np.where(is_new, new_score, _day_score(z, elevated, drift.score))
    out["kind"] = kind
    out["method"] = "robust"
    out["lower"] = out["lower"].fillna(0.0)
    out["upper"] = out["upper"].fillna(0.0)
    out["anomaly_start"] = start  # numpy days: made dates for the anomalies only (conform)
    out["threshold"] = threshold
    out["cusum"] = drift.carried_small  # what the next day carries on from
    out["cusum_large"] = drift.carried_large
    out["unusual_days"] = unusual.masks
    out["episode_peak"] = peak
    out["alert"] = opens | new_spend | ((kind == "drop") & drop_opens & config.alert_on_drops)
    return out


OPENED_SPIKE, OPENED_SUSTAINED = 1, 2


def _day_score(z: np.ndarray, elevated: np.ndarray, drift_score: np.ndarray) -> np.ndarray:
    """A day's score: its own z, or the drift's where larger on a day above normal, the only
    days the drift can open an episode on. After a run of rises the CUSUMs take days to fall
    back; scored on the normal days after it, they ranked those above real events' days."""
    return np.where(elevated, np.fmax(z, drift_score), z)


@dataclass
class _Drift:
    """The two CUSUMs, Page's recursion carried from day to day: each day's z is against that
    day's own baseline, so a ramp adds up its whole surprise (recomputing them over the last
    days against today's model let a ramp that had lifted today's level hide its own earlier
    days). A series starts from ``small_before`` / ``large_before`` (the baselines' CUSUM of
    its last days) where it has no statistics of the day before: its first day, a gap, scores
    written before they existed. After a day of an open episode they restart from 0, as a
    CUSUM does after its alarm: the evidence is spent, and carried on it kept alerting a level
    shift again and again once the baseline had adopted the new level.

    ``drifting_if``: the rows that open an episode when the drift reaches ``bar`` (elevated,
    their money to date worth it). Filled by the walk: ``small`` / ``large`` after each row's
    day, ``score`` their drift score, ``carried_*`` what the next day starts from."""

    z: np.ndarray
    small_before: np.ndarray
    large_before: np.ndarray
    is_new: np.ndarray
    drifting_if: np.ndarray
    bar: np.ndarray
    state: pd.DataFrame | None  # the scores of the day before (SERIES_KEY, cusum, cusum_large)
    small: np.ndarray = field(init=False)
    large: np.ndarray = field(init=False)
    score: np.ndarray = field(init=False)
    carried_small: np.ndarray = field(init=False)
    carried_large: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if self.state is not None and not (len(self.state) and {"cusum", "cusum_large"}
                                           <= set(self.state.columns)):
            self.state = None
        self.small = np.zeros(len(self.z))
        self.large = np.zeros(len(self.z))
        self.score = np.zeros(len(self.z))
        self.carried_small = np.zeros(len(self.z))
        self.carried_large = np.zeros(len(self.z))

    def step(self, rows: np.ndarray | slice, small_before: np.ndarray,
             large_before: np.ndarray) -> np.ndarray:
        """The CUSUMs of ``rows`` after their day, from the given ones before it; whether each
        row drifts (its drift score reaches the bar)."""
        small = _cusum_step(small_before, self.z[rows], CUSUM_KS[0])
        large = _cusum_step(large_before, self.z[rows], CUSUM_KS[1])
        self.small[rows], self.large[rows] = small, large
        score = np.where(self.is_new[rows], 0.0, _drift_score(small, large))
        self.score[rows] = score
        return self.drifting_if[rows] & (score >= self.bar[rows])

    def spend(self, rows: np.ndarray | slice, alive: np.ndarray) -> None:
        """What the next day carries on from: 0 after a day of an open episode."""
        self.carried_small[rows] = np.where(alive, 0.0, self.small[rows])
        self.carried_large[rows] = np.where(alive, 0.0, self.large[rows])


@dataclass
class _Unusual:
    """Which recent days of each series stood out without opening an episode: a day scoring
    UNUSUAL_SCORE or more above expected at the end of a run of elevated days marks itself and
    that run. Kept as a mask of the last UNUSUAL_MEMORY days (bit k: k days before the row's
    day), shifted on a day and carried from one day's scores to the next as the CUSUMs are,
    so a daily run and a backfill mark the same days; a series not scored the day before
    starts from none. ``candidate``: rows above expected after an elevated day (``run``: the
    elevated days before each row), not new."""

    z: np.ndarray
    elevated: np.ndarray
    candidate: np.ndarray
    run: np.ndarray
    masks: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.masks = np.zeros(len(self.z), dtype=np.int64)

    def step(self, rows: np.ndarray | slice, drift_score: np.ndarray, in_episode: np.ndarray,
             before: np.ndarray) -> np.ndarray:
        """The masks of ``rows`` after their day, from those of the day before (``before``);
        ``in_episode``: rows an episode opened or continued (cost_anomalies has their days)."""
        score = _day_score(self.z[rows], self.elevated[rows], drift_score)
        stood_out = self.candidate[rows] & ~in_episode & (score >= UNUSUAL_SCORE)
        run = np.minimum(self.run[rows], UNUSUAL_MEMORY - 1).astype(np.int64)
        marks = np.where(stood_out, (np.int64(1) << (run + 1)) - 1, 0)
        masks = ((before.astype(np.int64) << 1) & UNUSUAL_KEEP) | marks
        self.masks[rows] = masks
        return masks


def _walk_episodes(
    merged: pd.DataFrame,
    previous: pd.DataFrame | None,
    days: np.ndarray,
    elevated: np.ndarray,
    hard: np.ndarray,
    drift: _Drift,
    new_spend: np.ndarray,
    drop: np.ndarray,
    low: np.ndarray,
    run: np.ndarray,
    jump: np.ndarray,
    impact: np.ndarray,
    unusual: _Unusual,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
           np.ndarray]:
    """Day by day (vectorised over series): an elevated day of an open episode continues it
    (unless its impact doubles the episode's peak); a worthy day (``hard``, or drifting) with
    no open episode opens one, its start traced back over the elevated run. A ``drop`` opens
    one too, which goes on while the days stay ``low`` (the rows returned fifth; the sixth,
    the drops that opened). The drift's CUSUMs are carried along (_Drift), and so are the days
    that stood out (_Unusual) and each open episode's peak (its largest day's impact so far,
    returned last, 0 where none is open): stored in cost_scores.episode_peak, it is what a
    daily run compares a day with, as a range does (the day before's impact alone made a
    dip and a rebound alert again in a daily run and not in a backfill)."""
    prev = with_owner(previous) if previous is not None and len(previous) else None
    n = len(merged)
    if prev is None and drift.state is None and (n == 0 or (days == days[0]).all()):
        # One day and nothing open or carried before it (the first daily run): no state to
        # carry, so no need to identify series across days.
        opens = hard | drift.step(slice(None), drift.small_before, drift.large_before)
        drift.spend(slice(None), opens | new_spend)
        unusual.step(slice(None), drift.score, opens | new_spend, np.zeros(n, dtype=np.int64))
        start = np.where(opens, days - run, days)
        opened_as = np.where(jump, OPENED_SPIKE, OPENED_SUSTAINED).astype(np.int8)
        return (np.zeros(n, dtype=bool), opens, start, opened_as, drop, drop.copy(),
                np.where(opens | new_spend, impact, 0.0))
    from sentinel_pipeline.detection.frames import series_codes  # noqa: PLC0415

    state = None if drift.state is None else with_owner(drift.state)
    others = [f for f in (prev, state) if f is not None]
    codes_all = series_codes([merged, *others], SERIES_KEY)
    codes = codes_all[:n]
    n_codes = int(codes_all.max()) + 1 if len(codes_all) else 0
    carried_small, carried_large = np.zeros(n_codes), np.zeros(n_codes)
    carried_marks = np.zeros(n_codes, dtype=np.int64)
    as_of = np.full(n_codes, np.datetime64("NaT"), dtype="datetime64[D]")
    if state is not None:
        state_codes = codes_all[n + (len(prev) if prev is not None else 0):]
        carried_small[state_codes] = state["cusum"].to_numpy(dtype=float, na_value=0.0)
        carried_large[state_codes] = state["cusum_large"].to_numpy(dtype=float, na_value=0.0)
        if "unusual_days" in state.columns:  # scores written before it existed: none
            carried_marks[state_codes] = state["unusual_days"].fillna(0).to_numpy().astype(
                np.int64)
        as_of[state_codes] = pd.to_datetime(state["usage_date"]).to_numpy().astype(
            "datetime64[D]")
    open_start = np.full(n_codes, np.datetime64("NaT"), dtype="datetime64[D]")
    open_kind = np.zeros(n_codes, dtype=np.int8)
    peak = np.zeros(n_codes)
    dropping = np.zeros(n_codes, dtype=bool)
    if prev is not None:
        prev_codes = codes_all[n:n + len(prev)]
        up = prev["kind"].isin(UP_KINDS).to_numpy()
        open_start[prev_codes[up]] = pd.to_datetime(
            prev.loc[up, "anomaly_start"]).to_numpy().astype("datetime64[D]")
        open_kind[prev_codes[up]] = np.where(
            prev.loc[up, "kind"].isin(["spike", "level_shift", "new_spend"]),
            OPENED_SPIKE, OPENED_SUSTAINED)
        peak[prev_codes[up]] = prev.loc[up, "impact"].to_numpy(dtype=float)
        dropping[prev_codes[(prev["kind"] == "drop").to_numpy()]] = True
    if n and state is not None and "episode_peak" in state.columns:  # else prev's impact, above
        stored = state["episode_peak"].to_numpy(dtype=float, na_value=0.0)
        fresh = (stored > 0) & (as_of[state_codes] == days.min() - np.timedelta64(1, "D"))
        peak[state_codes[fresh]] = stored[fresh]

    continuing = np.zeros(n, dtype=bool)
    opens = np.zeros(n, dtype=bool)
    dropped = np.zeros(n, dtype=bool)
    drop_opens = np.zeros(n, dtype=bool)
    start = days.copy()
    opened_as = np.zeros(n, dtype=np.int8)
    peak_after = np.zeros(n)
    order = np.argsort(days, kind="stable")
    boundaries = np.flatnonzero(np.diff(days[order].astype(np.int64))) + 1
    for rows in np.split(order, boundaries) if n else []:
        c = codes[rows]
        known = as_of[c] == days[rows] - np.timedelta64(1, "D")
        worthy = hard[rows] | drift.step(
            rows, np.where(known, carried_small[c], drift.small_before[rows]),
            np.where(known, carried_large[c], drift.large_before[rows]))
        is_open = ~np.isnat(open_start[c])
        bigger = is_open & worthy & (impact[rows] >= REALERT_FACTOR * peak[c])
        cont = elevated[rows] & is_open & ~bigger
        new = worthy & ~cont
        continuing[rows], opens[rows] = cont, new
        dropped[rows] = drop[rows] | (low[rows] & dropping[c])
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
        dropping[c[dropped[rows]]] = True
        drift.spend(rows, alive)
        carried_small[c], carried_large[c] = drift.carried_small[rows], drift.carried_large[rows]
        carried_marks[c] = unusual.step(rows, drift.score[rows], cont | new | new_spend[rows],
                                        np.where(known, carried_marks[c], 0))
        peak_after[rows] = np.where(alive, new_peak, 0.0)
        as_of[c] = days[rows]
    return continuing, opens, start, opened_as, dropped, drop_opens, peak_after
