"""The Slack messages of alerts, within Slack's limits whatever the names and counts.

Each alert has a message of its own (``build_message``: people react to it and reply in its
thread, which is how feedback and follow-ups find it); a busy day's overflow, and the day
messages of releases before issue 16, list several alerts (``build_day_message``).

Pure functions: alerts in, a ``{"text", "blocks"}`` payload out. Everything that
comes from billing data is escaped, so a service or account name cannot mention @channel,
@here, users or groups, nor add links.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from sentinel_pipeline.formatting import money
from sentinel_pipeline.sources.root_causes import (
    BASIS,
    HEADING,
    describe,
    from_json,
    where_the_money_went,
)

MAX_ALERTS_SHOWN = 10
MAX_BLOCKS = 50  # Slack's limit per message
MAX_SECTION_CHARS = 2900  # Slack allows 3000 characters per section text
MAX_HEADER_CHARS = 150  # Slack's limit for a header block's plain text
MAX_FIELD_CHARS = 300  # one name or label
MAX_PROSE_CHARS = 1200  # one explanation

_BROADCAST = re.compile(r"@(?=(channel|here|everyone)\b)", re.IGNORECASE)
_TOKEN = re.compile(r"\bxox[a-z]-[A-Za-z0-9-]+|\bxapp-[A-Za-z0-9-]+")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: object, limit: int | None = None) -> str:
    """Slack mrkdwn escaping (``&``, ``<``, ``>``), so billing data cannot mention or link.

    ``@here``-style words also get a zero-width space after the ``@``: they are not mentions
    in API messages, but a later ``link_names`` setting would make them so.
    """
    raw = "" if text is None or (isinstance(text, float) and pd.isna(text)) else str(text)
    if limit is not None:
        raw = clip(raw, limit)
    raw = raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub("@\u200b", raw)


def redact(text: str) -> str:
    """Hide anything shaped like a Slack token (error texts are shown in channels)."""
    return _TOKEN.sub("[redacted]", text)


def _optional(row: pd.Series, column: str) -> Any:
    value = row.get(column)
    if value is None or (not isinstance(value, str | list | dict) and pd.isna(value)):
        return None
    return value


def alert_text(row: pd.Series, owner_key: str = "") -> str:
    """One alert's section: what, how much, why, where the money went, what to do.

    The owner (SENTINEL_OWNER_KEY's value) follows the region when the series has one; with
    ``owner_key`` given (or an ``owner_key`` field on the row) untagged spend says "untagged"."""
    raw_currency = str(_optional(row, "currency") or "USD")
    currency = escape(raw_currency, 10)
    pct = _optional(row, "pct_change")
    pct_text = f" ({float(pct):+,.0f} %)" if pct is not None else " (new spend)"
    labels = [f"_{escape(row['kind'], 40)}_"]
    action = _optional(row, "action")
    if action is not None:
        labels.append(f"action: *{escape(action, 40)}*")
    confidence = _optional(row, "confidence")
    if confidence is not None:
        try:
            labels.append(f"confidence {float(confidence):.0%}")
        except (TypeError, ValueError):
            labels.append(f"confidence {escape(confidence, 20)}")
    owner = _optional(row, "owner")
    key = owner_key or _optional(row, "owner_key")
    owned = (f"Owner: *{escape(owner, 64)}* · " if owner
             else f"Owner: _untagged_ ({escape(key, 64)}) · " if key else "")
    lines = [
        f"*{escape(row['service'], MAX_FIELD_CHARS)}* · account "
        f"{escape(row['account_id'], 64)} · {escape(row['region'], 64)} · {owned}"
        + " · ".join(labels),
        f"Actual {money(row['actual_cost'], currency)} vs expected "
        f"{money(row['expected_cost'], currency)}{pct_text}, impact "
        f"{money(row['impact'], currency)}",
    ]
    causes = from_json(_optional(row, "root_causes"))
    impact = _optional(row, "impact")
    explanation = _optional(row, "explanation")
    if explanation:
        # The fallback explanation ends with the same lines as a sentence; shown once, below.
        sentence = where_the_money_went(causes, impact, raw_currency)
        text = str(explanation).replace(f" {sentence}", "") if sentence else str(explanation)
        lines.append(escape(text, MAX_PROSE_CHARS))
    grew = describe(causes, impact, currency=raw_currency)
    if grew:
        lines.append(f"*{HEADING}* ({BASIS}): {escape(grew, MAX_PROSE_CHARS)}")
    where = _optional(row, "where_to_look")
    if where:
        lines.append(f"*Where to look:* {escape(where, MAX_FIELD_CHARS)}")
    return clip("\n".join(lines), MAX_SECTION_CHARS)


def build_message(
    day: str,
    alert: pd.Series,
    ui_link: str | None = None,
    *,
    feedback_hint: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """One alert's own message: a header naming it, its section, how to give feedback, and
    (when Sentinel follows the episode up by editing the message) its ``status`` line."""
    currency = str(_optional(alert, "currency") or "USD")
    impact = _optional(alert, "impact")
    above = (f", {money(float(impact), currency)} above expected"
             if impact is not None and float(impact) > 0 else "")
    # The header names no billing data (the section below does, escaped); the notification
    # text names the service, escaped like the rest.
    title = clip(f"Cost anomaly on {day}{above}", MAX_HEADER_CHARS)
    text = f"Cost anomaly on {day}: {clip(str(alert['service']), 100)}{above}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        {"type": "section", "text": {"type": "mrkdwn", "text": alert_text(alert)}},
    ]
    if status:
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": clip(status, MAX_SECTION_CHARS)}})
    blocks.append(_footer([feedback_hint] if feedback_hint else [], ui_link, " · "))
    return {"text": escape(text), "blocks": blocks}


def build_day_message(
    day: str,
    alerts: pd.DataFrame,
    ui_link: str | None = None,
    *,
    reply: bool = False,
    max_shown: int = MAX_ALERTS_SHOWN,
) -> dict[str, Any]:
    """Blocks and fallback text for several alerts of a day, largest $ impact first: a busy
    day's alerts past the per-alert messages (one message, not a flood).

    ``reply`` is for alerts found by a rerun of a day already reported: the message goes in the
    thread of that day's message and says so.
    """
    max_shown = max(1, min(max_shown, (MAX_BLOCKS - 2) // 2))
    ordered = alerts.sort_values("impact", ascending=False, kind="stable")
    total = float(pd.to_numeric(ordered["impact"]).clip(lower=0).sum())
    count = f"{len(ordered)} alert{'s' if len(ordered) != 1 else ''}"
    if reply:
        title = f"Update for {day}: {count} more, {money(total)} above expected"
    else:
        title = f"Cost anomalies for {day}: {count}, {money(total)} above expected"
    title = clip(title, MAX_HEADER_CHARS)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title}}
    ]
    for _, row in ordered.head(max_shown).iterrows():
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": alert_text(row)}})
        blocks.append({"type": "divider"})
    hidden = len(ordered) - max_shown
    blocks.append(_footer([f"{hidden} more alert(s) not shown."] if hidden > 0 else [], ui_link,
                          " "))
    return {"text": escape(title), "blocks": blocks}


def _footer(notes: list[str], ui_link: str | None, separator: str) -> dict[str, Any]:
    """The context block closing a message: its notes, the link to the UI, the signature."""
    parts = [*notes, *([f"<{ui_link}|Open the partition in Dagster>"] if ui_link else []),
             "Sent by Sentinel."]
    return {"type": "context",
            "elements": [{"type": "mrkdwn", "text": clip(separator.join(parts), 2000)}]}
