"""The life of an anomaly: cost_anomalies rows grouped into episodes with a status per day.

An episode is one series' run of elevated days that alerted, named by (series, anomaly_start)
(schema.episode_key). cost_anomalies already carries that start on every up-kind row of the run,
so the episodes of day D follow from cost_anomalies[D] and the episodes live on D-1:

- open      an alerted up-kind row on D starts it (alert_day = D)
- ongoing   an up-kind row on D with the start of an episode live on D-1
- resolved  live on D-1, no up-kind row with its start on D: resolved_on = D; shown once
- accepted  someone marked it expected / planned (alert_feedback): shown accepted on the first
            day after its open day on which the feedback is known, then it leaves the table (its
            level is adopted by the baseline, feedback.py)

Drops are not episodes. impact_to_date adds each day's impact to the day before's; days counts
anomaly_start..D (..D-1 once resolved). Pure: frames in, frames out; the asset reads and writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from sentinel_pipeline.delivery.ledger import alert_key
from sentinel_pipeline.detection.feedback import ACCEPT_VERDICTS
from sentinel_pipeline.schema import (
    EPISODE_COLUMNS,
    SERIES_KEY,
    UP_KINDS,
    conform,
    empty_frame,
    episode_key,
    with_owner,
)

LIVE_STATUSES = ("open", "ongoing")
# When anomaly_episodes of the day before a run is missing, the episodes live then are rebuilt
# by replaying cost_anomalies of this many days before it (an episode's rows all carry its start;
# the baseline adopts a level after robust.ADOPT_DAYS, so runs this long are rare).
REBUILD_DAYS = 60


@dataclass(frozen=True)
class Verdict:
    """The latest feedback on an episode."""

    verdict: str
    user: str
    accepted: bool  # someone said expected or planned (as detection reads it: any such row)


@dataclass(frozen=True)
class _Episode:
    episode_id: str
    series: tuple[str, ...]
    kind: str
    anomaly_start: date
    alert_day: date
    alert_key: str
    impact_to_date: float
    currency: str


def _as_date(value: Any) -> date:
    """A stored day (date, Timestamp or text) as a date."""
    if isinstance(value, datetime):  # pd.Timestamp too
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _episode_id(row: pd.Series, start: object) -> str:
    """The episode_key of a row's series and an anomaly_start."""
    key_of: Callable[..., str] = episode_key  # the series parts, then the start
    return key_of(*[row[c] for c in SERIES_KEY], start)


def verdicts(feedback: pd.DataFrame | None) -> dict[str, Verdict]:
    """episode_id -> the latest verdict given on it (by seen_at; the series and anomaly_start's
    episode when the row names no episode_id), and whether anyone accepted it. Unknown episodes
    are harmless: nothing looks them up."""
    if feedback is None or len(feedback) == 0 or "verdict" not in feedback.columns:
        return {}
    rows = feedback.copy()
    for column in ["episode_id", "verdict", "user_id", "seen_at", "anomaly_start", *SERIES_KEY]:
        if column not in rows.columns:
            rows[column] = ""
        rows[column] = rows[column].fillna("").astype(str)
    ids = [eid or (_episode_id(r, r["anomaly_start"]) if r["anomaly_start"] else "")
           for eid, (_, r) in zip(rows["episode_id"], rows.iterrows(), strict=True)]
    rows = rows.assign(_id=ids).sort_values("seen_at", kind="stable")
    out: dict[str, Verdict] = {}
    for eid, verdict, user in zip(rows["_id"], rows["verdict"], rows["user_id"], strict=True):
        if eid:
            accepted = verdict in ACCEPT_VERDICTS or (eid in out and out[eid].accepted)
            out[eid] = Verdict(verdict, user, accepted)
    return out


def _accepted(eid: str, known: Mapping[str, Verdict]) -> bool:
    found = known.get(eid)
    return found is not None and found.accepted


def _live_from(previous: pd.DataFrame | None) -> dict[str, _Episode]:
    """The episodes open or ongoing in a stored anomaly_episodes day."""
    if previous is None or len(previous) == 0:
        return {}
    rows = with_owner(previous)
    rows = rows[rows["status"].astype(str).isin(LIVE_STATUSES)]
    out = {}
    for _, r in rows.iterrows():
        out[str(r["episode_id"])] = _Episode(
            str(r["episode_id"]), tuple(str(r[c]) for c in SERIES_KEY), str(r["kind"]),
            _as_date(r["anomaly_start"]), _as_date(r["alert_day"]), str(r["alert_key"]),
            float(r["impact_to_date"]), str(r["currency"]))
    return out


def _row(ep: _Episode, day: date, status: str, actual: float, expected: float,
         known: Mapping[str, Verdict]) -> dict[str, Any]:
    last = day - timedelta(days=1) if status == "resolved" else day
    verdict = known.get(ep.episode_id)
    return {
        "usage_date": day,
        "episode_id": ep.episode_id,
        **dict(zip(SERIES_KEY, ep.series, strict=True)),
        "kind": ep.kind,
        "anomaly_start": ep.anomaly_start,
        "alert_day": ep.alert_day,
        "alert_key": ep.alert_key,
        "status": status,
        "days": max((last - ep.anomaly_start).days + 1, 1),
        "actual_cost": actual,
        "expected_cost": expected,
        "impact_to_date": ep.impact_to_date,
        "resolved_on": day if status == "resolved" else None,
        "verdict": verdict.verdict if verdict else "",
        "verdict_by": verdict.user if verdict else "",
        "currency": ep.currency,
    }


def _day_episodes(rows: pd.DataFrame | None, day: date, live: dict[str, _Episode],
                  pending: dict[str, float], known: Mapping[str, Verdict]
                  ) -> tuple[list[dict[str, Any]], dict[str, _Episode]]:
    """The episode rows of ``day`` and the episodes live after it. ``pending``: $ of up-kind
    rows seen before their episode alerted (added to its impact when it does)."""
    out: list[dict[str, Any]] = []
    still: dict[str, _Episode] = {}
    seen: set[str] = set()
    up = rows[rows["kind"].astype(str).isin(UP_KINDS)] if rows is not None and len(rows) else None
    for _, r in (up.iterrows() if up is not None else iter(())):
        start = _as_date(r["anomaly_start"])
        eid = _episode_id(r, start)
        impact = float(r["impact"]) if pd.notna(r["impact"]) else 0.0
        actual, expected = float(r["actual_cost"]), float(r["expected_cost"])
        if eid in seen:
            continue
        seen.add(eid)
        if eid in live:
            ep = replace(live[eid], impact_to_date=live[eid].impact_to_date + impact)
            status = "accepted" if _accepted(eid, known) else "ongoing"
        elif bool(r["alert"]):
            ep = _Episode(eid, tuple(str(r[c]) for c in SERIES_KEY), str(r["kind"]), start, day,
                          alert_key(r), pending.pop(eid, 0.0) + impact,
                          str(r["currency"]) if pd.notna(r.get("currency")) else "")
            status = "open"
        else:  # elevated but not (yet) alerted: not an episode; its money counts if it does
            pending[eid] = pending.get(eid, 0.0) + impact
            continue
        out.append(_row(ep, day, status, actual, expected, known))
        if status != "accepted":
            still[eid] = ep
    for eid, ep in live.items():
        if eid in seen:
            continue
        status = "accepted" if _accepted(eid, known) else "resolved"
        out.append(_row(ep, day, status, float("nan"), float("nan"), known))
    return out, still


def episodes_for_days(anomalies: Mapping[date, pd.DataFrame | None], days: list[date],
                      previous: pd.DataFrame | None,
                      feedback: pd.DataFrame | None = None) -> dict[date, pd.DataFrame]:
    """anomaly_episodes of each day, in order, from cost_anomalies of those days, the stored
    episodes of the day before them (``previous``; None: nothing was live) and the feedback."""
    known = verdicts(feedback)
    live = _live_from(previous)
    pending: dict[str, float] = {}
    out: dict[date, pd.DataFrame] = {}
    for day in sorted(days):
        rows = anomalies.get(day)
        if rows is not None and len(rows):
            rows = with_owner(rows)
        found, live = _day_episodes(rows, day, live, pending, known)
        frame = pd.DataFrame(found, columns=EPISODE_COLUMNS) if found \
            else empty_frame(EPISODE_COLUMNS)
        if len(frame):
            order = {s: i for i, s in enumerate(("open", "ongoing", "accepted", "resolved"))}
            frame = frame.assign(_o=frame["status"].map(order)).sort_values(
                ["_o", "impact_to_date"], ascending=[True, False], kind="stable").drop(
                columns="_o")
        out[day] = conform(frame, EPISODE_COLUMNS)
    return out


def rebuild_previous(anomalies: Mapping[date, pd.DataFrame | None],
                     feedback: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """The episodes of the last of ``anomalies``' days (cost_anomalies of the days before a run
    whose anomaly_episodes was never written), replayed from nothing; None without days."""
    if not anomalies:
        return None
    days = sorted(anomalies)
    replayed = episodes_for_days(anomalies, days, None, feedback)
    return replayed[days[-1]]


def unepisoded_alerts(anomalies: pd.DataFrame | None, episodes: pd.DataFrame) -> list[str]:
    """Alerted up-kind rows of a cost_anomalies day with no row of that day's episodes (the
    check that every alert is followed)."""
    if anomalies is None or len(anomalies) == 0:
        return []
    rows = with_owner(anomalies)
    rows = rows[rows["alert"].astype(bool) & rows["kind"].astype(str).isin(UP_KINDS)]
    have = set(episodes["episode_id"].astype(str)) if len(episodes) else set()
    return [eid for _, r in rows.iterrows()
            if (eid := _episode_id(r, r["anomaly_start"])) not in have]
