"""The weekly digest: last week's spend against the week before, open anomalies, top movers,
and how the anomalies of the week lived (anomaly_episodes, alert_feedback).

Daily alerts say what broke; the Monday digest says where the money is going, like the managed
anomaly services' weekly summaries. ``build_digest`` is pure (frames in, message out);
``load_digest_inputs`` reads the frames from the tables.

The life-of-anomalies figures, over the week Monday..Sunday:
- open anomalies by owner: episodes open or ongoing on Sunday, per owner ("" shown as
  "untagged"), with their $ above expected so far.
- time to detect: median of alert_day - anomaly_start (days) over episodes that alerted in the
  week; time to resolve: median of resolved_on - anomaly_start over episodes resolved in it.
- precision: of the week's alerts that got feedback, the share whose latest verdict is not
  not_anomaly ("no feedback yet" when none did).
- cost avoided, the FinOps Foundation's cost avoidance for anomalies: for each episode resolved
  in the week and not accepted (expected / planned) nor marked not_anomaly,
      daily overrun at resolution x days it would have gone on undetected,
  the daily overrun being its impact (actual - expected) on its last elevated day (its
  impact_to_date / days when that day's row is not there), and the days those from resolved_on
  to the end of that billing month, inclusive: without the alert, the month's bill is where the
  overrun would have shown up.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd

from sentinel_pipeline.delivery.ledger import alert_key
from sentinel_pipeline.delivery.message import MAX_SECTION_CHARS, clip, escape
from sentinel_pipeline.detection.feedback import ACCEPT_VERDICTS, NOT_ANOMALY
from sentinel_pipeline.formatting import money
from sentinel_pipeline.schema import FEEDBACK_TABLE
from sentinel_pipeline.storage import TableStore

TOP_MOVERS = 5
TOP_OPEN = 5
TOP_OWNERS = 8


def week_label(monday: date) -> str:
    """ISO week, e.g. '2025-W13' (the digest's ledger key)."""
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def previous_week(today: date) -> date:
    """Monday of the last complete Monday-to-Sunday week before ``today``."""
    return today - timedelta(days=today.weekday() + 7)


@dataclass(frozen=True)
class DigestInputs:
    week_start: date
    costs: pd.DataFrame  # raw_daily_costs of the week and the week before
    alerts: pd.DataFrame  # annotated_alerts of the week
    # anomaly_episodes of the day before the week and of the week (empty: none written)
    episodes: pd.DataFrame = field(default_factory=pd.DataFrame)
    feedback: pd.DataFrame | None = None  # alert_feedback (None: nobody answered yet)


def load_digest_inputs(store: TableStore, week_start: date) -> DigestInputs:
    end = week_start + timedelta(days=6)
    return DigestInputs(
        week_start,
        store.read_range("raw_daily_costs", week_start - timedelta(days=7), end),
        store.read_range("annotated_alerts", week_start, end),
        store.read_range("anomaly_episodes", week_start - timedelta(days=1), end),
        store.read_table(FEEDBACK_TABLE),
    )


def _days(column: pd.Series) -> pd.Series:
    return pd.to_datetime(column).dt.date


def _in_week(episodes: pd.DataFrame, status: str, start: date, end: date) -> pd.DataFrame:
    """The episode rows of ``status`` dated in the week."""
    if len(episodes) == 0:
        return episodes
    days = _days(episodes["usage_date"])
    return episodes[(episodes["status"] == status) & (days >= start) & (days <= end)]


def still_open(episodes: pd.DataFrame, end: date) -> pd.DataFrame:
    """The episode rows open or ongoing on ``end``: what the digest calls open, everywhere."""
    if len(episodes) == 0:
        return episodes
    return episodes[(_days(episodes["usage_date"]) == end)
                    & episodes["status"].isin(["open", "ongoing"])]


def open_by_owner(episodes: pd.DataFrame, end: date) -> pd.DataFrame:
    """Episodes open or ongoing on ``end`` per owner ("untagged" for ""): count and $ above
    expected so far, largest first."""
    if len(episodes) == 0:
        return pd.DataFrame(columns=["owner", "episodes", "impact"])
    rows = still_open(episodes, end)
    owner = rows["owner"].fillna("").astype(str).replace("", "untagged")
    out = (rows.assign(owner=owner).groupby("owner")
           .agg(episodes=("episode_id", "nunique"), impact=("impact_to_date", "sum"))
           .reset_index())
    return out.sort_values(["impact", "owner"], ascending=[False, True]).reset_index(drop=True)


def _median_days(later: pd.Series, start: pd.Series) -> float | None:
    if len(later) == 0:
        return None
    gaps = [(b - a).days for a, b in zip(_days(start), _days(later), strict=True)]
    return float(pd.Series(gaps).median())


def time_to_detect(episodes: pd.DataFrame, start: date, end: date) -> float | None:
    """Median days from anomaly_start to the alert, over the episodes that alerted in the week."""
    opened = _in_week(episodes, "open", start, end)
    return _median_days(opened["alert_day"], opened["anomaly_start"]) if len(opened) else None


def time_to_resolve(episodes: pd.DataFrame, start: date, end: date) -> float | None:
    """Median days from anomaly_start to resolved_on, over the episodes resolved in the week."""
    done = _in_week(episodes, "resolved", start, end)
    return _median_days(done["resolved_on"], done["anomaly_start"]) if len(done) else None


def precision(alert_keys: list[str], feedback: pd.DataFrame | None) -> tuple[int, int]:
    """(alerts whose latest verdict is not not_anomaly, alerts with any feedback) among
    ``alert_keys``."""
    if feedback is None or len(feedback) == 0 or not alert_keys:
        return 0, 0
    rows = feedback[feedback["alert_key"].astype(str).isin(set(alert_keys))]
    if "seen_at" in rows.columns:
        rows = rows.sort_values("seen_at", kind="stable")
    latest = rows.groupby("alert_key")["verdict"].last()
    return int((latest != NOT_ANOMALY).sum()), len(latest)


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def cost_avoided(episodes: pd.DataFrame, start: date, end: date) -> float:
    """The FinOps cost avoidance of the episodes resolved in the week (module docstring)."""
    done = _in_week(episodes, "resolved", start, end)
    if len(done) == 0:
        return 0.0
    done = done[~done["verdict"].fillna("").isin([*ACCEPT_VERDICTS, NOT_ANOMALY])]
    days = _days(episodes["usage_date"])
    total = 0.0
    for _, ep in done.iterrows():
        resolved = pd.Timestamp(ep["resolved_on"]).date()
        last = episodes[(episodes["episode_id"] == ep["episode_id"])
                        & (days == resolved - timedelta(days=1))]
        if len(last) and pd.notna(last["actual_cost"].iloc[0]):
            overrun = float(last["actual_cost"].iloc[0] - last["expected_cost"].iloc[0])
        else:
            overrun = float(ep["impact_to_date"]) / max(int(ep["days"]), 1)
        total += max(overrun, 0.0) * ((_month_end(resolved) - resolved).days + 1)
    return total


def _days_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g} day{'' if value == 1 else 's'}"


def life_lines(inputs: DigestInputs, alert_keys: list[str]) -> tuple[list[str], list[str]]:
    """The digest's life-of-anomalies lines and its open-by-owner lines."""
    start = inputs.week_start
    end = start + timedelta(days=6)
    episodes = inputs.episodes
    good, answered = precision(alert_keys, inputs.feedback)
    judged = (f"{good / answered:.0%} ({good} of {answered} alerts with feedback were real)"
              if answered else "no feedback yet")
    resolved = _in_week(episodes, "resolved", start, end)
    detect = _days_text(time_to_detect(episodes, start, end))
    resolve = _days_text(time_to_resolve(episodes, start, end))
    life = [
        f"*Time to detect* (median, start to alert): {detect} · *time to resolve* (median, "
        f"start to back to normal): {resolve} over {len(resolved)} resolved",
        f"*Precision:* {judged}",
        f"*Cost avoided* (daily overrun × days left in the month when resolved): "
        f"{money(cost_avoided(episodes, start, end))}",
    ]
    owners = open_by_owner(episodes, end)
    by_owner = ["*Open anomalies by owner* at week end:"]
    for _, row in owners.head(TOP_OWNERS).iterrows():
        by_owner.append(f"• {escape(row['owner'], 80)}: {int(row['episodes'])} open, "
                        f"{money(row['impact'])} above expected so far")
    if len(owners) > TOP_OWNERS:
        by_owner.append(f"… and {len(owners) - TOP_OWNERS} more owners.")
    if len(owners) == 0:
        by_owner.append("none.")
    return life, by_owner


def _spend(costs: pd.DataFrame, start: date, end: date) -> pd.Series:
    """Cost per service between two days inclusive."""
    if len(costs) == 0:
        return pd.Series(dtype=float)
    days = pd.to_datetime(costs["usage_date"]).dt.date
    picked = costs[(days >= start) & (days <= end)]
    return picked.groupby("service")["cost"].sum()


def open_alerts(alerts: pd.DataFrame, keys: list[str], episodes: pd.DataFrame,
                end: date) -> pd.DataFrame:
    """The week's alerts (``keys``: their alert_key, in order) whose episode is still open on
    ``end`` (still_open: the same episodes the open-by-owner lines count)."""
    rows = still_open(episodes, end)
    if len(alerts) == 0 or len(rows) == 0:
        return alerts.iloc[0:0]
    open_keys = set(rows["alert_key"].astype(str))
    return alerts[[key in open_keys for key in keys]]


def _pct(now: float, before: float) -> str:
    return f" ({(now - before) / before * 100:+.1f} %)" if before > 0 else ""


def build_digest(inputs: DigestInputs, ui_url: str = "") -> dict[str, Any]:
    """Blocks and fallback text of the week's digest (a handful of blocks, within limits)."""
    start = inputs.week_start
    end = start + timedelta(days=6)
    this_week = _spend(inputs.costs, start, end)
    last_week = _spend(inputs.costs, start - timedelta(days=7), start - timedelta(days=1))
    total, before = float(this_week.sum()), float(last_week.sum())
    title = clip(f"Weekly cost digest {week_label(start)} ({start:%b %d} to {end:%b %d})", 150)

    spend = (f"*Total spend:* {money(total)} vs {money(before)} the week before"
             f"{_pct(total, before)}")
    alerts = inputs.alerts
    impact = float(pd.to_numeric(alerts["impact"]).clip(lower=0).sum()) if len(alerts) else 0.0
    keys = [alert_key(row) for _, row in alerts.iterrows()] if len(alerts) else []
    opened = open_alerts(alerts, keys, inputs.episodes, end)
    lines = [f"*Alerts this week:* {len(alerts)}, {money(impact)} above expected; "
             f"*still open* at week end: {len(opened)}"]
    for _, row in opened.sort_values("impact", ascending=False).head(TOP_OPEN).iterrows():
        lines.append(f"• {escape(row['service'], 200)} · {escape(row['account_id'], 64)} · "
                     f"{escape(row['region'], 64)}: {escape(row['kind'], 40)} since "
                     f"{escape(str(row.get('anomaly_start') or row['usage_date'])[:10], 10)}, "
                     f"impact {money(row['impact'])} on {str(row['usage_date'])[:10]}")
    if len(opened) > TOP_OPEN:
        lines.append(f"… and {len(opened) - TOP_OPEN} more open.")

    change = this_week.subtract(last_week, fill_value=0.0)
    movers = change.reindex(change.abs().sort_values(ascending=False).index).head(TOP_MOVERS)
    mover_lines = ["*Top movers* (week over week, by $ change):"]
    for service, delta in movers.items():
        if delta == 0:
            continue
        now, prior = float(this_week.get(service, 0.0)), float(last_week.get(service, 0.0))
        sign = "+" if delta > 0 else "-"
        mover_lines.append(f"• {escape(service, 200)}: {sign}{money(abs(delta))} "
                           f"({money(prior)} → {money(now)}){_pct(now, prior)}")
    if len(mover_lines) == 1:
        mover_lines.append("no change.")

    life, by_owner = life_lines(inputs, keys)

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        {"type": "section", "text": {"type": "mrkdwn", "text": spend}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": clip("\n".join(lines), MAX_SECTION_CHARS)}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": clip("\n".join(by_owner), MAX_SECTION_CHARS)}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": clip("\n".join(life), MAX_SECTION_CHARS)}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": clip("\n".join(mover_lines), MAX_SECTION_CHARS)}},
    ]
    footer = "Sent by Sentinel every Monday."
    if ui_url:
        footer = f"<{ui_url.rstrip('/')}/assets/cost_anomalies|Anomalies in Dagster> · " + footer
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    return {"text": escape(title), "blocks": blocks}
