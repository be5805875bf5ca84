"""The weekly digest: last week's spend against the week before, open anomalies, top movers.

Daily alerts say what broke; the Monday digest says where the money is going, like the managed
anomaly services' weekly summaries. ``build_digest`` is pure (frames in, message out);
``load_digest_inputs`` reads the frames from the tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd

from sentinel_pipeline.delivery.message import MAX_SECTION_CHARS, clip, escape
from sentinel_pipeline.formatting import money
from sentinel_pipeline.schema import SERIES_KEY
from sentinel_pipeline.storage import TableStore

TOP_MOVERS = 5
TOP_OPEN = 5


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
    last_day_anomalies: pd.DataFrame  # cost_anomalies of the week's last day


def load_digest_inputs(store: TableStore, week_start: date) -> DigestInputs:
    end = week_start + timedelta(days=6)
    return DigestInputs(
        week_start,
        store.read_range("raw_daily_costs", week_start - timedelta(days=7), end),
        store.read_range("annotated_alerts", week_start, end),
        store.read_range("cost_anomalies", end, end),
    )


def _spend(costs: pd.DataFrame, start: date, end: date) -> pd.Series:
    """Cost per service between two days inclusive."""
    if len(costs) == 0:
        return pd.Series(dtype=float)
    days = pd.to_datetime(costs["usage_date"]).dt.date
    picked = costs[(days >= start) & (days <= end)]
    return picked.groupby("service")["cost"].sum()


def open_alerts(alerts: pd.DataFrame, last_day_anomalies: pd.DataFrame) -> pd.DataFrame:
    """The week's alerts whose series is still elevated on the week's last day (episode open)."""
    if len(alerts) == 0 or len(last_day_anomalies) == 0:
        return alerts.iloc[0:0]
    still = last_day_anomalies
    if "kind" in still.columns:
        still = still[still["kind"] != "drop"]
    keys = set(still[SERIES_KEY].astype(str).itertuples(index=False, name=None))
    mask = [k in keys for k in alerts[SERIES_KEY].astype(str).itertuples(index=False, name=None)]
    return alerts[mask]


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
    still_open = open_alerts(alerts, inputs.last_day_anomalies)
    lines = [f"*Alerts this week:* {len(alerts)}, {money(impact)} above expected; "
             f"*still open* at week end: {len(still_open)}"]
    for _, row in still_open.sort_values("impact", ascending=False).head(TOP_OPEN).iterrows():
        lines.append(f"• {escape(row['service'], 200)} · {escape(row['account_id'], 64)} · "
                     f"{escape(row['region'], 64)}: {escape(row['kind'], 40)} since "
                     f"{escape(str(row.get('anomaly_start') or row['usage_date'])[:10], 10)}, "
                     f"impact {money(row['impact'])} on {str(row['usage_date'])[:10]}")
    if len(still_open) > TOP_OPEN:
        lines.append(f"… and {len(still_open) - TOP_OPEN} more open.")

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

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        {"type": "section", "text": {"type": "mrkdwn", "text": spend}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": clip("\n".join(lines), MAX_SECTION_CHARS)}},
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": clip("\n".join(mover_lines), MAX_SECTION_CHARS)}},
    ]
    footer = "Sent by Sentinel every Monday."
    if ui_url:
        footer = f"<{ui_url.rstrip('/')}/assets/cost_anomalies|Anomalies in Dagster> · " + footer
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    return {"text": escape(title), "blocks": blocks}
