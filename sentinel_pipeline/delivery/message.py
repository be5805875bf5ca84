"""The Slack message of one day's alerts, within Slack's limits whatever the alert count."""

from __future__ import annotations

from typing import Any

import pandas as pd

MAX_ALERTS_SHOWN = 10
MAX_SECTION_CHARS = 2900  # Slack allows 3000 characters per section text


def escape(text: object) -> str:
    """Slack mrkdwn escaping, so billing data cannot mention @channel, users or add links."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _money(value: float) -> str:
    return "n/a" if pd.isna(value) else f"${value:,.2f}"


def build_message(day: str, alerts: pd.DataFrame, ui_link: str | None = None) -> dict[str, Any]:
    """Blocks and fallback text for a day's alerts, largest $ impact first."""
    ordered = alerts.sort_values("impact", ascending=False, kind="stable")
    total = float(ordered["impact"].clip(lower=0).sum())
    title = f"Cost anomalies for {day}: {len(ordered)} alert(s), {_money(total)} above expected"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}}
    ]
    for _, row in ordered.head(MAX_ALERTS_SHOWN).iterrows():
        pct = "" if pd.isna(row["pct_change"]) else f" ({row['pct_change']:+.0f} %)"
        text = (
            f"*{escape(row['service'])}* · account {escape(row['account_id'])} · "
            f"{escape(row['region'])} · _{escape(row['kind'])}_\n"
            f"Actual {_money(row['actual_cost'])} vs expected {_money(row['expected_cost'])}"
            f"{pct}, impact {_money(row['impact'])}\n"
            f"{escape(row['explanation'])}\n"
            f"*Where to look:* {escape(row['where_to_look'])}\n*Action:* {escape(row['action'])}"
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": text[:MAX_SECTION_CHARS]}})
        blocks.append({"type": "divider"})
    footer = []
    if len(ordered) > MAX_ALERTS_SHOWN:
        footer.append(f"{len(ordered) - MAX_ALERTS_SHOWN} more alert(s) not shown.")
    if ui_link:
        footer.append(f"<{ui_link}|Open the partition in Dagster>")
    footer.append("Sent by Sentinel.")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " ".join(footer)}]})
    return {"text": escape(title), "blocks": blocks}
