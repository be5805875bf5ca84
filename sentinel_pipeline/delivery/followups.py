"""Follow-ups on an alert's message as its episode goes on (issue 16): the channel hears about
an anomaly once, and then sees its life in that one place instead of new alerts.

For each row of ``anomaly_episodes[D]`` whose alert went out as a message of its own:

- ``ongoing``: the message is edited (chat.update) to carry a status line, "Still running:
  day N, $X above expected so far". Idempotent: the ledger remembers the last status written
  (and its day, so a rerun of an older day never turns the status back);
- ``resolved``: one reply in its thread, "Resolved after N days, $Y above expected in total",
  and the status line updated;
- ``accepted``: one reply, "Accepted as <verdict> by <@user>: <reason>", and the status line.

Each reply is posted exactly once through ``post_once`` (ledger key
``followup|<status>|<episode_id>``, pending before the post, adopted from the thread after a
crash). ``open`` rows are the alert itself: nothing to add.

Alerts that went out inside a day message (releases before issue 16, or a busy day's overflow)
share that message with other alerts: it is not edited, but the resolved / accepted reply goes
in its thread, naming the series. Alerts the ledger does not know (never posted, too old, or
version 1 entries that do not say which message carried them) are skipped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from sentinel_pipeline.delivery.deliver import (
    FEEDBACK_HINT,
    combined_error,
    partition_link,
    post_once,
)
from sentinel_pipeline.delivery.feedback import USER_ID, VERDICT_WORDS, alert_row
from sentinel_pipeline.delivery.ledger import DeliveryLedger, followup_key
from sentinel_pipeline.delivery.message import MAX_FIELD_CHARS, build_message, escape
from sentinel_pipeline.delivery.sinks import AlertSink, DeliveryError, Posted
from sentinel_pipeline.formatting import money
from sentinel_pipeline.schema import FEEDBACK_TABLE
from sentinel_pipeline.storage import TableStore

EPISODES_TABLE = "anomaly_episodes"


@dataclass
class FollowUps:
    day: str
    replies: list[str] = field(default_factory=list)
    updates: list[str] = field(default_factory=list)


def _value(row: dict[str, Any], column: str, default: Any = None) -> Any:
    value = row.get(column, default)
    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return default
    return value


def _mention(user_id: Any) -> str:
    """``<@U123>`` for a Slack user ID, nothing else (the field comes from a table)."""
    text = str(user_id or "")
    return f"<@{text}>" if USER_ID.match(text) else "someone"


def status_line(episode: dict[str, Any], reason: str = "") -> str | None:
    """The status written into the alert's message for this episode row (None: nothing)."""
    status = str(_value(episode, "status", ""))
    days = int(float(_value(episode, "days", 0) or 0))
    currency = str(_value(episode, "currency", "USD") or "USD")
    total = money(float(_value(episode, "impact_to_date", 0.0) or 0.0), escape(currency, 10))
    if status == "ongoing":
        return (f":hourglass_flowing_sand: *Still running:* day {days}, {total} above expected "
                f"so far (as of {str(_value(episode, 'usage_date', ''))[:10]}).")
    if status == "resolved":
        return f":white_check_mark: *Resolved* after {days} days, {total} above expected in total."
    if status == "accepted":
        return f":ok_hand: *{accepted_text(episode, reason)}*"
    return None


def accepted_text(episode: dict[str, Any], reason: str = "") -> str:
    verdict = VERDICT_WORDS.get(str(_value(episode, "verdict", "")), "expected")
    text = f"Accepted as {verdict} by {_mention(_value(episode, 'verdict_by', ''))}"
    return text + (f": {escape(reason, MAX_FIELD_CHARS)}" if reason else "")


def _reply_text(episode: dict[str, Any], status: str, reason: str) -> str:
    days = int(float(_value(episode, "days", 0) or 0))
    currency = str(_value(episode, "currency", "USD") or "USD")
    total = money(float(_value(episode, "impact_to_date", 0.0) or 0.0), escape(currency, 10))
    if status == "resolved":
        return f"Resolved after {days} days, {total} above expected in total."
    return accepted_text(episode, reason) + "."


def _reason(feedback: pd.DataFrame | None, episode: dict[str, Any]) -> str:
    """The reason the accepting user gave in their reply, from alert_feedback ('' if none)."""
    if feedback is None or len(feedback) == 0 or "reason" not in feedback.columns:
        return ""
    mine = feedback[(feedback["alert_key"].astype(str) == str(episode.get("alert_key")))
                    & (feedback["user_id"].astype(str) == str(episode.get("verdict_by")))]
    return str(mine["reason"].iloc[-1] or "") if len(mine) else ""


def follow_up_day(
    store: TableStore,
    sink: AlertSink,
    ledger: DeliveryLedger,
    day: str,
    dagster_url: str = "",
    feedback_hint: str | None = FEEDBACK_HINT,
) -> FollowUps:
    """Follow up every episode of ``anomaly_episodes[day]`` on its alert's message.

    Raises DeliveryError (after trying the other episodes when the refusal was about one
    channel); what was posted before is in the ledger and is not posted again.
    """
    result = FollowUps(day)
    episodes = store.read_partition(EPISODES_TABLE, date.fromisoformat(day))
    if episodes is None or len(episodes) == 0:
        return result
    failures: list[DeliveryError] = []
    # Read once for the day, and only if an episode was accepted; alert rows per alert day.
    feedback = (store.read_table(FEEDBACK_TABLE)
                if (episodes["status"].astype(str) == "accepted").any() else None)
    alert_rows: dict[str, dict[str, dict[str, Any]]] = {}
    for record in episodes.to_dict("records"):
        episode = {str(k): v for k, v in record.items()}
        status = str(_value(episode, "status", ""))
        key = str(_value(episode, "alert_key", ""))
        if status not in ("ongoing", "resolved", "accepted") or not key:
            continue
        where = ledger.thread_of(key)
        entry = ledger.alerts.get(key) or {}
        if where is None or entry.get("destination", sink.destination) != sink.destination:
            continue  # no message of its own Sentinel knows (an older ledger, the outbox)
        root, own = where
        channel = str(entry["channel"])
        reason = _reason(feedback, episode) if status == "accepted" else ""
        try:
            if status in ("resolved", "accepted"):
                _reply_once(store, sink, ledger, result, episode, status, reason, channel, root,
                            own, day)
            if own:
                _update(store, sink, ledger, result, key, episode, reason, channel, root, day,
                        dagster_url, feedback_hint, alert_rows)
        except DeliveryError as exc:
            failures.append(exc)
            if not exc.channel_only:
                break  # Slack unreachable or the token refused: the next tick retries
    if failures:
        raise combined_error(failures)
    return result


def _reply_once(store: TableStore, sink: AlertSink, ledger: DeliveryLedger, result: FollowUps,
                episode: dict[str, Any], status: str, reason: str, channel: str, root: Posted,
                own: bool, day: str) -> None:
    key = followup_key(status, str(episode["episode_id"]))
    if ledger.followup_sent(key):
        return
    text = _reply_text(episode, status, reason)
    if not own:  # a day message carries several alerts: say which one
        text = (f"*{escape(episode.get('service'), MAX_FIELD_CHARS)}* · account "
                f"{escape(episode.get('account_id'), 64)} · {escape(episode.get('region'), 64)}"
                f": {text}")
    message = {"text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
    posted, adopted = post_once(store, sink, ledger, key, "followup", channel,
                                f"{day}-{_short(key)}", message, day=day, thread_ts=root.ts)
    result.replies.append(f"{channel}: {status} reply for {episode['episode_id']}"
                          f"{' (found in the thread, not posted again)' if adopted else ''}"
                          f" -> {posted.reference}")


def _update(store: TableStore, sink: AlertSink, ledger: DeliveryLedger, result: FollowUps,
            key: str, episode: dict[str, Any], reason: str, channel: str, root: Posted,
            day: str, dagster_url: str, feedback_hint: str | None,
            alert_rows: dict[str, dict[str, dict[str, Any]]]) -> None:
    status = status_line(episode, reason)
    if status is None:
        return
    digest = hashlib.sha256(status.encode()).hexdigest()[:16]
    last = ledger.last_update(key)
    if last.get("digest") == digest or str(last.get("day", "")) > day:
        return  # written already, or newer news is there already
    row = alert_row(store, key, alert_rows)
    if row is None:
        return  # the alert is no longer in annotated_alerts: leave its message alone
    alert_day = key[:10]
    message = build_message(alert_day, pd.Series(row), partition_link(dagster_url, alert_day),
                            feedback_hint=feedback_hint, status=status)
    reference = sink.update(channel, root, f"{alert_day}-{_short(key)}", message)
    ledger.record_update(key, day, digest)
    result.updates.append(f"{channel}: {key} now says {episode.get('status')} -> {reference}")


def _short(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]
