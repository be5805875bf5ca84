"""Benchmark: false alerts on noise shapes no generator in this repository was tuned on.

Each shape is 300 series x 110 days of a weekly cycle (a sine of random amplitude 0-50 % and
phase) times a level from $55 to $3,000, with noise of 3-30 % in log space and no anomaly at
all, so every alert is a false one. Alerts are counted over the last 40 days (the first 70 are
history) and reported per 100 series-months, for 3 draws:

- ``normal``: independent normal noise (the detector's own assumption);
- ``t3``: Student-t noise with 3 degrees of freedom (heavy tails), scaled to the same sd;
- ``ar1``: AR(1) noise with rho = 0.5 (a busy day is followed by a busy day);
- ``growth``: normal noise on a level growing 5-30 % of its first month a month;
- ``randomwalk``: normal noise on a level that wanders 1 % a day;
- ``episodes``: normal noise, and in the history (days 7-66, none in the scored days) three
  episodes per series, each a ramp of +3-10 % a day for 7-14 days or a rise of +50-200 % for
  1-2 days, as dense as the public benchmark's year 2: alerts here are the price of a history
  that held anomalies (a baseline that learned them, or one that left them out too eagerly);
- ``skips``: normal noise, and 10-50 % of the days without spend (no row), at random: a
  service billed only on the days a job ran;
- ``sporadic``: normal noise, and 70-95 % of the days without spend, at random: a job run
  a few times a month;
- ``steps``: normal noise on a level that changes once for good, by a factor of 0.5-2, on a
  day of the history (10-55): a resize or a migration, adopted by the scored days;
- ``monthly``: normal noise plus a fixed charge of 50-300 % of the series' level on one date
  (1-28) of every month: a support plan or a licence;
- ``monthend``: the same charge on the last day of every month (the 31st, 30th or 28th; the
  scored days hold Mar 31, after Feb 28 and Jan 31);
- ``monthlate``: the same charge on one date (1-26) of every month, billed a day late in 30 %
  of the months;
- ``tiers``: volume-tiered prices that reset on the 1st (as data transfer's): the first ~7 % of
  the month's volume at 1.29x the price of the last tier, the next ~26 % at 1.21x;
- ``closing``: a month-end close, the last 3 days of each month 30-100 % higher;
- ``fortnight``: normal noise plus a job run every other week (a full backup, a payroll
  run) on one weekday, costing 50-300 % of the series' level;
- ``storage``: storage priced per GB-month (as S3's and EBS's), whose daily cost is the
  month's price over the month's days, so it is 10.7 % higher every day of February than of
  January: 50-100 % of each series' cost, on volumes growing 0-10 % a month, the rest usage as
  in ``normal``. Its days start on 2024-11-15, so the scored ones hold Feb 1 and Mar 1.
- ``leapstorage``: the same series from 2027-11-15: a leap February, 6.9 % higher a day.
- ``additive``: normal noise of the same sd in dollars, not in log space (cost = model x (1 +
  noise x e), kept above 1 % of it), as the public benchmark's generator draws it: symmetric
  in dollars, so in log terms its rises are shorter and its dips longer than the detector's
  model says.

Also printed: the drop rows each shape leaves in ``cost_anomalies`` and the drops they open
(a drop's first day: what ``alert_on_drops`` would send; on these series none is a real one),
and how the scores' upper tail compares with the normal tail they are calibrated to: the share
of scored series-days with ``cost_scores.score`` at or above 3 and at the threshold, over
P(Z > s) (1.0: a threshold means the false-alarm rate it promises; robust only, seed's score is
not calibrated).

Usage: python -m benchmarks.shapes [--draws 3] [--method robust]
"""

from __future__ import annotations

import argparse
import calendar
import time
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np
import pandas as pd

from sentinel_pipeline.detection import DetectionConfig, baselines_for_days, scores_for_days

SERIES, DAYS, SCORED = 300, 110, 40
START = date(2025, 1, 1)
SHAPES = ("normal", "t3", "ar1", "growth", "randomwalk", "episodes", "skips", "sporadic",
          "steps", "monthly", "monthend", "monthlate", "tiers", "closing", "storage",
          "leapstorage", "fortnight", "additive")
# Shapes whose days start elsewhere than START.
STARTS = {"storage": date(2024, 11, 15), "leapstorage": date(2027, 11, 15)}
SKIPPED = (0.1, 0.5)  # range of each series' share of days without spend in ``skips``
SPORADIC = (0.7, 0.95)  # and in ``sporadic``


def costs(shape: str, seed: int) -> np.ndarray:
    """(series, days) costs of one shape."""
    rng = np.random.default_rng(seed)
    t = np.arange(DAYS)
    dates = [STARTS.get(shape, START) + timedelta(days=int(i)) for i in t]
    noise = rng.uniform(0.03, 0.30, SERIES)[:, None]
    level = np.exp(rng.uniform(4, 8, SERIES))[:, None]
    week = 1 + rng.uniform(0, 0.5, SERIES)[:, None] * np.sin(
        2 * np.pi * t / 7 + rng.uniform(0, 6, SERIES)[:, None])
    if shape == "t3":
        e = rng.standard_t(3, size=(SERIES, DAYS)) / np.sqrt(3)
    elif shape == "ar1":
        e = np.zeros((SERIES, DAYS))
        shocks = rng.normal(size=(SERIES, DAYS)) * np.sqrt(1 - 0.5**2)
        for j in range(1, DAYS):
            e[:, j] = 0.5 * e[:, j - 1] + shocks[:, j]
    else:
        e = rng.normal(size=(SERIES, DAYS))
    if shape == "growth":
        week = week * (1 + rng.uniform(0.05, 0.3, SERIES)[:, None] / 30 * t)
    elif shape == "randomwalk":
        week = week * np.exp(np.cumsum(rng.normal(0, 0.01, (SERIES, DAYS)), axis=1))
    log_cost = noise * e
    if shape == "episodes":
        log_cost += past_episodes(rng)
    out = level * week * (np.exp(log_cost) if shape != "additive"
                          else np.maximum(1 + log_cost, 0.01))
    if shape in ("skips", "sporadic"):
        draw = rng.random(out.shape)  # before the shares: the skips' draws stay as they were
        skipped = rng.uniform(*(SKIPPED if shape == "skips" else SPORADIC), SERIES)
        out[draw < skipped[:, None]] = np.nan
    elif shape == "steps":
        after = t[None, :] >= rng.integers(10, 56, SERIES)[:, None]
        out *= np.where(after, np.exp(rng.uniform(-np.log(2), np.log(2), SERIES))[:, None], 1.0)
    elif shape in ("monthly", "monthend", "monthlate"):
        day_of_month = np.array([d.day for d in dates])[None, :]
        if shape == "monthly":
            due = day_of_month == rng.integers(1, 29, SERIES)[:, None]
        elif shape == "monthend":
            due = np.array([(d + timedelta(days=1)).day == 1 for d in dates])[None, :]
        else:
            late = rng.random((SERIES, 12)) < 0.3  # a day late, per series and month
            month = np.array([d.month - 1 for d in dates])
            due = day_of_month == rng.integers(1, 27, SERIES)[:, None] + late[:, month]
        out += np.where(due, rng.uniform(0.5, 3.0, SERIES)[:, None] * level, 0.0)
    elif shape == "tiers":
        # Share of the month's volume used before each day's middle: the price tier it is in.
        used = np.array([(d.day - 0.5) / calendar.monthrange(d.year, d.month)[1]
                         for d in dates])[None, :]
        out *= np.select([used < 0.07, used < 0.33], [1 / 0.778, 0.944 / 0.778], 1.0)
    elif shape == "closing":
        last3 = np.array([(d + timedelta(days=3)).month != d.month
                          for d in dates])[None, :]
        out *= np.where(last3, 1 + rng.uniform(0.3, 1.0, SERIES)[:, None], 1.0)
    elif shape == "fortnight":
        due = t[None, :] % 14 == rng.integers(0, 14, SERIES)[:, None]
        out += np.where(due, rng.uniform(0.5, 3.0, SERIES)[:, None] * level, 0.0)
    elif shape in ("storage", "leapstorage"):
        share = rng.uniform(0.5, 1.0, SERIES)[:, None]
        volume = 1 + rng.uniform(0, 0.1, SERIES)[:, None] / 30 * t
        days_in_month = np.array([calendar.monthrange(d.year, d.month)[1] for d in dates])
        out = out * (1 - share) + level * share * volume * 30 / days_in_month[None, :]
    return out


def past_episodes(rng: np.random.Generator) -> np.ndarray:
    """Log excess of three episodes per series in days 7-66 (20 days apart at most)."""
    excess = np.zeros((SERIES, DAYS))
    for row in excess:
        for slot in (7, 27, 47):
            if rng.random() < 0.5:  # a ramp
                length = int(rng.integers(7, 15))
                start = slot + int(rng.integers(0, 20 - length + 1)) if length < 20 else slot
                row[start:start + length] = np.log1p(rng.uniform(0.03, 0.10)
                                                     * np.arange(1, length + 1))
            else:  # a rise of one or two days
                start = slot + int(rng.integers(0, 18))
                row[start:start + int(rng.integers(1, 3))] = np.log1p(rng.uniform(0.5, 2.0))
    return excess


def cost_rows(matrix: np.ndarray, start: date = START) -> pd.DataFrame:
    """Raw cost rows of a (series, days) cost matrix: services s0, s1, ... from ``start``; a
    NaN cost is a day without spend (no row)."""
    count, n = matrix.shape
    dates = [start + timedelta(days=i) for i in range(n)]
    rows = pd.DataFrame({
        "usage_date": np.tile(dates, count),
        "service": np.repeat([f"s{i}" for i in range(count)], n),
        "account_id": "a", "region": "r",
        "cost": matrix.ravel(), "currency": "USD",
    })
    return rows[rows["cost"].notna()].reset_index(drop=True)


def false_alerts(shape: str, seed: int, config: DetectionConfig) -> dict[str, float]:
    """Alerts per 100 series-months over the scored days of one draw: in all ("all") and by
    the kind each opened as (spike: the day's jump; sustained: the drift of a run); and the
    drop rows recorded (not alerted by default, but listed in ``cost_anomalies``)."""
    rows = cost_rows(costs(shape, seed), STARTS.get(shape, START))
    days = sorted(set(rows["usage_date"]))[-SCORED:]
    base = baselines_for_days(rows, days, config)
    scored = scores_for_days(rows, pd.concat(base.values(), ignore_index=True), days, config)
    rows = pd.concat(scored.values(), ignore_index=True).sort_values(["service", "usage_date"])
    kinds = rows.loc[rows["alert"].astype(bool), "kind"].astype(str)
    per = 100 / (SERIES * SCORED / 30)
    drop = (rows["kind"].astype(str) == "drop").to_numpy()
    same = np.r_[False, rows["service"].to_numpy()[1:] == rows["service"].to_numpy()[:-1]]
    opened = drop & ~(np.r_[False, drop[:-1]] & same)  # alerted with alert_on_drops
    score = rows["score"].to_numpy(dtype=float)
    tails = {f"tail {s:g}": float(np.mean(score >= s)) / (1 - NormalDist().cdf(s))
             for s in (TAIL_AT, config.score_threshold)}
    return {"all": len(kinds) * per,
            **{kind: int((kinds == kind).sum()) * per for kind in KINDS},
            "drop rows": int(drop.sum()) * per, "drops opened": int(opened.sum()) * per,
            **tails}


KINDS = ("spike", "sustained")
TAIL_AT = 3.0  # besides the threshold: a score's tail where it still has days to count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--method", default="robust")
    args = parser.parse_args()
    config = DetectionConfig(method=args.method)
    started = time.perf_counter()
    print(f"false alerts per 100 series-months ({args.method}, {SERIES} series, "
          f"last {SCORED} of {DAYS} days, {args.draws} draws)")
    for shape in SHAPES:
        per_draw = [false_alerts(shape, seed, config) for seed in range(args.draws)]
        total = [d["all"] for d in per_draw]
        by_kind = ", ".join(f"{k} {np.mean([d[k] for d in per_draw]):.2f}"
                            for k in (*KINDS, "drop rows", "drops opened"))
        tails = " / ".join(f"{np.mean([d[k] for d in per_draw]):.2f}x"
                           for k in per_draw[0] if k.startswith("tail "))
        print(f"  {shape:10s} mean {np.mean(total):6.2f}   draws "
              + " ".join(f"{x:6.2f}" for x in total) + f"   ({by_kind}; score tail at "
              f"{TAIL_AT:g} / {config.score_threshold:g}: {tails})")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
