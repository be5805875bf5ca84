"""What people said about alerts (the alert_feedback table), turned into detector inputs.

Two verdicts change detection (schema.VERDICTS); both are read from the feedback table as it is
on each run, so removing a reaction undoes its effect on the next run (nothing is remembered
elsewhere), and the same rows read twice give the same result.

- ``expected`` / ``planned`` on an episode (series, anomaly_start S, alerted on day A): the new
  level is accepted. For every day D > A the baseline level of that series is the median of its
  weekday-adjusted days from S on (robust.py ``level_since``), at once rather than after the
  ADOPT_DAYS an unanswered episode waits: the episode stops being elevated, so it stops alerting,
  and the days after it are expected at the new level. The alert day itself is left as it was,
  so a rerun keeps the alert people answered (only its follow-ups change).
- ``not_anomaly`` on (series, kind): a false alarm of that kind. That series' score bar for that
  kind of change goes up by NOT_ANOMALY_STEP (in the score's own unit, calibrated z) for every
  distinct alert so marked, at most MAX_RAISES times, from the day after that alert: one verdict
  turns a bar of 4 into 6, i.e. that kind of change must be about as rare as P(Z > 6) instead
  of P(Z > 4) before it alerts again. Only that series and kind group (a level shift is the
  spike that went on; sustained, new_spend and drop each have their own): the others keep the
  configured bar. The bar a row had to pass is kept in cost_scores (column ``threshold``).
  A fixed step rather than a bar fitted to the dismissed score: it needs no memory of that
  score, and several verdicts say more than one.

Feedback naming no known series or episode simply matches nothing. The seed method ignores
feedback: it is the blog's fixed reference rule.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from sentinel_pipeline.detection.frames import usage_days
from sentinel_pipeline.schema import SERIES_KEY

ACCEPT_VERDICTS = ("expected", "planned")
NOT_ANOMALY = "not_anomaly"
NOT_ANOMALY_STEP = 2.0  # z added to a series' bar per distinct alert marked not_anomaly
MAX_RAISES = 3  # at most +6: a bar of 4 never goes above 10

# A bar is kept per kind group: the kinds one rule of robust.score opens. A spike and the
# level shift it becomes are the day's jump; sustained is the drift (or a jump after a run).
BAR_KINDS: tuple[str, ...] = ("spike", "sustained", "new_spend", "drop")
_KIND_GROUP = {"spike": "spike", "level_shift": "spike", "sustained": "sustained",
               "new_spend": "new_spend", "drop": "drop"}

ACCEPTED_COLUMNS = [*SERIES_KEY, "anomaly_start", "alert_day"]
BAR_COLUMNS = [*SERIES_KEY, "kind", "alert_day", "raises", "threshold"]


def _usable(feedback: pd.DataFrame | None) -> pd.DataFrame:
    """The feedback rows with a verdict and a series (an absent table is no feedback)."""
    if feedback is None or len(feedback) == 0 or "verdict" not in feedback.columns:
        return pd.DataFrame(columns=[*SERIES_KEY, "verdict", "kind", "anomaly_start",
                                     "alert_key", "episode_id"])
    out = feedback.copy()
    for column in [*SERIES_KEY, "verdict", "kind", "alert_key", "episode_id"]:
        if column not in out.columns:
            out[column] = ""
        out[column] = out[column].fillna("").astype(str)
    return out


def _day(text: object) -> date | None:
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


def accepted_episodes(feedback: pd.DataFrame | None) -> pd.DataFrame:
    """One row per episode someone marked expected or planned: its series, anomaly_start and
    the day it alerted (the alert_key's day; anomaly_start when that is unreadable)."""
    rows = _usable(feedback)
    rows = rows[rows["verdict"].isin(ACCEPT_VERDICTS)]
    if len(rows) == 0:
        return pd.DataFrame(columns=ACCEPTED_COLUMNS)
    starts = rows["anomaly_start"].map(_day)
    alert_days = [a or s for a, s in zip(rows["alert_key"].map(_day), starts, strict=True)]
    out = rows[SERIES_KEY].assign(anomaly_start=starts, alert_day=alert_days)
    out = out[out["anomaly_start"].notna()]
    return out.drop_duplicates().reset_index(drop=True)[ACCEPTED_COLUMNS]


def answered_episodes(feedback: pd.DataFrame | None) -> pd.DataFrame:
    """One row per episode someone answered, whatever the verdict: its series and
    anomaly_start (verdicts.py never leaves such an episode out of the history)."""
    rows = _usable(feedback)
    rows = rows[rows["verdict"].isin([*ACCEPT_VERDICTS, NOT_ANOMALY])]
    out = rows[SERIES_KEY].assign(anomaly_start=rows["anomaly_start"].map(_day))
    return out[out["anomaly_start"].notna()].drop_duplicates().reset_index(drop=True)


def level_since(accepted: pd.DataFrame, keys: pd.DataFrame, day: date) -> dict[int, date]:
    """Row of ``keys`` -> the anomaly_start whose level is accepted on ``day`` (the latest
    episode of that series accepted and alerted before ``day``); series without one are left
    out. One comparison per accepted episode (they are few), not a lookup per series."""
    out: dict[int, date] = {}
    if len(accepted) == 0 or len(keys) == 0:
        return out
    live = accepted[accepted["alert_day"] < day].sort_values("anomaly_start", kind="stable")
    if len(live) == 0:
        return out
    # The rows whose every key part is one of the accepted episodes' (as text), found from
    # each column's distinct values: a million keys made text cost 0.6 s a day.
    rows = np.arange(len(keys))
    for column in SERIES_KEY:
        codes, uniques = pd.factorize(keys[column].to_numpy()[rows], use_na_sentinel=False)
        wanted = np.isin(np.asarray(uniques, dtype=object).astype(str),
                         live[column].map(str).unique())
        rows = rows[wanted[codes]]
    text = {column: keys[column].to_numpy()[rows].astype(str) for column in SERIES_KEY}
    for episode in live.to_dict("records"):  # later starts overwrite earlier ones
        mask = np.ones(len(rows), dtype=bool)
        for column in SERIES_KEY:
            mask &= text[column] == str(episode[column])
        for row in rows[mask]:
            out[int(row)] = episode["anomaly_start"]
    return out


def raised_bars(feedback: pd.DataFrame | None, threshold: float) -> pd.DataFrame:
    """One row per distinct alert marked not_anomaly: its series, kind group, the day it
    alerted (the alert_key's day; anomaly_start when unreadable) and the bar of that series and
    kind after it, counting the verdicts up to it (threshold + NOT_ANOMALY_STEP each, at most
    MAX_RAISES). The bar applies from the day after the alert, so a rerun keeps the alert that
    was answered."""
    rows = _usable(feedback)
    rows = rows[(rows["verdict"] == NOT_ANOMALY) & rows["kind"].isin(list(_KIND_GROUP))]
    if len(rows) == 0:
        return pd.DataFrame(columns=BAR_COLUMNS)
    alert = rows["alert_key"].where(rows["alert_key"] != "", rows["episode_id"])
    starts = rows["anomaly_start"].map(_day) if "anomaly_start" in rows.columns \
        else pd.Series(None, index=rows.index)
    days = [a or s for a, s in zip(rows["alert_key"].map(_day), starts, strict=True)]
    out = rows[SERIES_KEY].assign(kind=rows["kind"].map(_KIND_GROUP), alert=alert,
                                  alert_day=days)
    out = out[out["alert_day"].notna() & (out["alert"] != "")]
    out = out.drop_duplicates([*SERIES_KEY, "kind", "alert"]).sort_values(
        [*SERIES_KEY, "kind", "alert_day"], kind="stable")
    out["raises"] = out.groupby([*SERIES_KEY, "kind"]).cumcount().add(1).clip(upper=MAX_RAISES)
    out["threshold"] = threshold + NOT_ANOMALY_STEP * out["raises"]
    return out[BAR_COLUMNS].reset_index(drop=True)


def bar_columns(frame: pd.DataFrame, bars: pd.DataFrame | None,
                threshold: float) -> dict[str, np.ndarray]:
    """The bar of each row of ``frame`` (rows of any days) for each kind group: ``threshold``
    plus a step per not_anomaly alert of its series and kind before the row's day, capped.
    One comparison per raise (they are few), not a lookup per row."""
    out = {kind: np.full(len(frame), threshold, dtype=float) for kind in BAR_KINDS}
    if bars is None or len(bars) == 0 or len(frame) == 0:
        return out
    days = usage_days(frame)
    cap = threshold + NOT_ANOMALY_STEP * MAX_RAISES
    text = {column: frame[column].astype(str).to_numpy() for column in SERIES_KEY}  # once
    for bar in bars.to_dict("records"):
        kind = str(bar["kind"])
        if kind not in out:
            continue
        mask = days > np.datetime64(bar["alert_day"], "D")
        for column in SERIES_KEY:
            mask &= text[column] == str(bar[column])
        out[kind][mask] = np.minimum(out[kind][mask] + NOT_ANOMALY_STEP, cap)
    return out


def bars_table(bars: pd.DataFrame) -> pd.DataFrame:
    """The bar of each raised (series, kind) today: its last raise (for metadata)."""
    if len(bars) == 0:
        return bars
    return bars.drop_duplicates([*SERIES_KEY, "kind"], keep="last").reset_index(drop=True)
