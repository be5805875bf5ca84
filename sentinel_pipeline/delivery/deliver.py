"""Deliver a day's new alerts once: skip what the ledger has, post the rest per channel.

One message per alert (issue 16), its chart in its own thread: people react to it and reply
in its thread (feedback.py reads both), and its episode's news is added to it later
(followups.py). The ledger records each alert's message (ts, channel ID) under the alert key.
Past ``MAX_ALERT_MESSAGES`` alert messages of a day in one channel, the rest go in one message
listing them (a rerun's further overflow: a reply in its thread), the shape of every day
message before issue 16. Alerts that earlier releases delivered in such day messages are in
the ledger too and are never posted again.

Exactly once, also across crashes (``post_once``):

1. the post is recorded in the ledger as *pending* (key, channel, alerts, time) before it is
   sent, and carries Slack message metadata ``{"event_type": "sentinel_alert",
   "event_payload": {"key": <ledger key>}}`` (the outbox file carries the same);
2. once Slack answers, the ledger records it delivered (with its ts) at once, before anything
   else can fail; a refusal Slack answered (``channel_not_found``, ``invalid_auth``, 429...)
   drops the pending entry, since nothing was posted;
3. a pending entry found later (the process was killed mid-post, or Slack timed out or
   answered 5xx / non-JSON) is looked up in the channel's recent history by its key first:
   found, it is *adopted* (recorded with its ts, its chart attached) and not posted again.
   Not found, it is posted again only when no copy can still be on its way: the attempt
   ended in this process with an error, or it is older than the sink's ``in_flight_seconds``
   (the longest a post with its retries can take, about 6 minutes for Slack); until then
   the message waits for a later tick.
4. If the history cannot be read (the app lacks ``channels:history`` / ``groups:history``),
   the pending post is **not** posted again, however old: the error names the scope to add,
   and the command that settles it by hand once someone has looked at the channel. A
   duplicate is never traded for an alert that might be lost; the error repeats on every tick
   until it is settled, and other channels and days are delivered meanwhile.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from sentinel_pipeline.delivery.chart import alert_chart, upload_title
from sentinel_pipeline.delivery.feedback import feedback_hint
from sentinel_pipeline.delivery.ledger import (
    COMMAND,
    DeliveryLedger,
    alert_key,
    message_key,
    reply_key,
)
from sentinel_pipeline.delivery.message import build_day_message, build_message
from sentinel_pipeline.delivery.routing import Router
from sentinel_pipeline.delivery.sinks import (
    HISTORY_SCOPES,
    AlertSink,
    DeliveryError,
    OutboxSink,
    Posted,
    channel_slug,
    post_metadata,
)
from sentinel_pipeline.storage import TableStore

# New alerts of a day and channel that get a message of their own, largest $ impact first;
# the rest go in one message listing them (a bad day must not flood the channel).
MAX_ALERT_MESSAGES = 20
ALERT_KINDS = frozenset({"alert", "message", "reply"})  # posts that deliver alerts
FEEDBACK_HINT = feedback_hint()  # with the default reactions


@dataclass
class DayDelivery:
    day: str
    sent: int = 0
    already_sent: int = 0
    adopted: int = 0  # alerts of an interrupted post found in the channel, not posted again
    posts: list[str] = field(default_factory=list)  # "channel: n alert(s) [reply] -> ref"


def partition_link(dagster_url: str, day: str, asset: str = "annotated_alerts") -> str | None:
    """The asset's partition page in the Dagster UI (the link the UI itself builds)."""
    if not dagster_url:
        return None
    return f"{dagster_url.rstrip('/')}/assets/{asset}?view=partitions&partition={day}"


def _warn_nowhere(_: str) -> None:
    return None


def resolve_pending(store: TableStore, sink: AlertSink, ledger: DeliveryLedger, key: str,
                    entry: dict[str, Any]) -> Posted | None:
    """Settle an unconfirmed post: the Posted found in the channel (now recorded), or None
    when it certainly is not there (the attempt is dropped and may be posted again).

    Raises DeliveryError when that cannot be told yet (history unreadable, or the attempt
    may still be in flight); nothing may be posted for ``key`` then.
    """
    finder: AlertSink | None = sink
    if entry.get("destination") != sink.destination:
        finder = OutboxSink(store) if entry.get("destination") == "outbox" else None
    channel, name = entry["channel"], entry.get("name") or key
    where = f"{name} for {channel}"
    if finder is None:
        raise DeliveryError(
            f"The post of {where} to {entry.get('destination')} was interrupted at "
            f"{entry.get('attempted_at')}, and {entry.get('destination')} is not configured "
            "now, so it cannot be checked: set SLACK_BOT_TOKEN again, or settle it by hand "
            f"with `{COMMAND} resolve '{key}' --posted <ts> | --not-posted`.", channel_only=True)
    try:
        found = finder.find(channel, name, key, float(entry["attempted_epoch"]),
                            thread_ts=entry.get("thread_ts") or None,
                            channel_id=entry.get("channel_id") or "")
    except DeliveryError as exc:
        scope = (f" Add {HISTORY_SCOPES} to the Slack app and reinstall it: Sentinel reads "
                 "the channel's recent history to see whether an interrupted post arrived."
                 if exc.code == "missing_scope" else "")
        raise DeliveryError(
            f"The post of {where} was interrupted at {entry.get('attempted_at')} and cannot be "
            f"checked in the channel: {exc}.{scope} It is not posted again until it can be "
            "checked, so it cannot be posted twice. After looking at the channel yourself you "
            f"can settle it: `{COMMAND} resolve '{key}' --posted <ts>` (it is there) or "
            "`--not-posted`.",
            channel_only=exc.channel_only or exc.code == "missing_scope", code=exc.code,
        ) from exc
    if found is not None:
        ledger.confirm(key, found, adopted=True)
        return found
    age = time.time() - float(entry["attempted_epoch"])
    if "ended_epoch" not in entry and age < finder.in_flight_seconds:
        raise DeliveryError(
            f"The post of {where} started {age:.0f} s ago by a process that did not finish is "
            f"not in the channel yet and may still be on its way; it is checked again on a "
            f"later tick (posted again only after {finder.in_flight_seconds:.0f} s).",
            channel_only=True)
    ledger.abandon(key)
    return None


def post_once(store: TableStore, sink: AlertSink, ledger: DeliveryLedger, key: str,
              kind: str, channel: str, name: str, message: dict[str, Any],
              alerts: list[str] | None = None, day: str = "",
              thread_ts: str | None = None) -> tuple[Posted, bool]:
    """Post ``message`` under ledger ``key`` exactly once; returns (where, adopted)."""
    entry = ledger.pending(key)
    if entry is not None:
        found = resolve_pending(store, sink, ledger, key, entry)
        if found is not None:
            return found, True
    ledger.begin(key, kind, channel, sink.destination, name, alerts or [], day=day,
                 thread_ts=thread_ts or "",
                 channel_id=ledger.channel_id(channel, sink.destination))
    metadata = post_metadata(key, kind=kind, channel=channel, name=name)
    try:
        posted = sink.post(channel, name, message, thread_ts=thread_ts, metadata=metadata)
    except DeliveryError as exc:
        ledger.abandon(key, ended=exc.uncertain)
        raise
    ledger.confirm(key, posted)
    return posted, False


def deliver_day(
    store: TableStore,
    sink: AlertSink,
    ledger: DeliveryLedger,
    router: Router,
    day: str,
    dagster_url: str = "",
    charts: bool = True,
    warn: Callable[[str], None] = _warn_nowhere,
    feedback_hint: str | None = FEEDBACK_HINT,
    max_messages: int = MAX_ALERT_MESSAGES,
) -> DayDelivery:
    """Post the day's alerts that were never delivered, each as a message of its own.

    Past ``max_messages`` alerts of a day with a message of their own in one channel, the rest
    (the smallest) go in one message listing them (in the thread of the day's message if one
    exists), so a bad day does not flood the channel. Interrupted posts of the day are
    settled first (adopted from the channel or dropped). Raises DeliveryError if a post failed
    (after trying the other channels when the refusal was about one channel); what was posted
    before is already in the ledger.
    """
    result = DayDelivery(day)
    alerts = store.read_partition("annotated_alerts", date.fromisoformat(day))
    pending = [(k, e) for k, e in ledger.pending_of_day(day) if e["kind"] in ALERT_KINDS]
    if (alerts is None or len(alerts) == 0) and not pending:
        return result
    alerts = (alerts if alerts is not None else pd.DataFrame()).reset_index(drop=True)
    records = alerts.to_dict("records")
    keys = pd.Series([alert_key(row) for row in records], index=alerts.index, dtype=object)
    failures: list[DeliveryError] = []
    blocked: set[str] = set()  # channels with an unsettled post: nothing new goes there
    adopted_keys: set[str] = set()
    for key, entry in pending:
        channel = entry["channel"]
        try:
            found = resolve_pending(store, sink, ledger, key, entry)
        except DeliveryError as exc:
            failures.append(exc)
            blocked.add(channel)
            if exc.channel_only:
                continue
            raise combined_error(failures) from exc
        if found is None:
            continue
        result.adopted += len(entry["alerts"])
        adopted_keys.update(entry["alerts"])
        result.posts.append(f"{channel}: {len(entry['alerts'])} alert(s) found in the channel "
                            f"after an interrupted post, not posted again -> {found.reference}")
        group = alerts[keys.isin(entry["alerts"])] if len(alerts) else alerts
        if not charts or not len(group):
            continue
        if entry["kind"] == "alert":
            _attach_chart(store, sink, channel, found, day, group.iloc[0],
                          _alert_stem(day, channel, key), warn)
        else:
            root = found if entry["kind"] == "message" else ledger.message(day, channel)
            if root is not None:
                _attach_day_chart(store, sink, channel, root, day, group,
                                  entry["kind"] == "reply", warn)
    fresh = ~keys.map(ledger.delivered).astype(bool)
    result.already_sent = int((~fresh & ~keys.isin(adopted_keys)).sum())
    new = alerts[fresh]
    if len(new) == 0:
        if failures:
            raise combined_error(failures)
        return result
    channels = router.channels(new)
    link = partition_link(dagster_url, day)
    for channel in sorted(set(channels) - blocked):
        group = new[channels == channel].sort_values("impact", ascending=False, kind="stable")
        room = max(max_messages - ledger.alert_message_count(day, channel), 0)
        try:
            for index, row in group.head(room).iterrows():
                key = str(keys[index])
                message = build_message(day, row, link, feedback_hint=feedback_hint)
                posted, adopted = post_once(store, sink, ledger, key, "alert", channel, day,
                                            message, alerts=[key], day=day)
                if adopted:
                    result.adopted += 1
                else:
                    result.sent += 1
                note = " (found in the channel, not posted again)" if adopted else ""
                result.posts.append(f"{channel}: {row['service']}{note} -> {posted.reference}")
                if charts:
                    _attach_chart(store, sink, channel, posted, day, row,
                                  _alert_stem(day, channel, key), warn)
            rest = group.iloc[room:]
            if len(rest):
                _post_overflow(store, sink, ledger, result, channel, day, rest,
                               keys[rest.index].tolist(), link, charts, warn)
        except DeliveryError as exc:
            failures.append(exc)
            if exc.channel_only:
                continue  # the other channels may still be fine
            break  # Slack unreachable or the token refused: the next tick retries
    if failures:
        raise combined_error(failures)
    return result


def _post_overflow(store: TableStore, sink: AlertSink, ledger: DeliveryLedger,
                   result: DayDelivery, channel: str, day: str, group: pd.DataFrame,
                   group_keys: list[str], link: str | None, charts: bool,
                   warn: Callable[[str], None]) -> None:
    """The alerts past the per-alert messages, listed in one day message (or, once the day has
    one in this channel, a reply in its thread)."""
    previous = ledger.message(day, channel)
    message = build_day_message(day, group, link, reply=previous is not None)
    if previous is None:
        key, kind = message_key(day, channel), "message"
    else:
        key, kind = reply_key(day, channel, group_keys), "reply"
    posted, adopted = post_once(store, sink, ledger, key, kind, channel, day, message,
                                alerts=group_keys, day=day,
                                thread_ts=previous.ts if previous else None)
    if adopted:
        result.adopted += len(group)
    else:
        result.sent += len(group)
    result.posts.append(f"{channel}: {len(group)} more alert(s) in one message"
                        f"{' as a thread reply' if previous else ''}"
                        f"{' (found in the channel, not posted again)' if adopted else ''}"
                        f" -> {posted.reference}")
    if charts:
        _attach_day_chart(store, sink, channel, previous or posted, day, group,
                          previous is not None, warn)


def combined_error(failures: list[DeliveryError]) -> DeliveryError:
    """One error for several refusals (channel-only when each one was)."""
    if len(failures) == 1:
        return failures[0]
    return DeliveryError(" | ".join(str(f) for f in failures),
                         channel_only=all(f.channel_only for f in failures))


def _alert_stem(day: str, channel: str, key: str) -> str:
    """The file stem of an alert's chart (one per alert, so its own in the outbox too)."""
    return f"{day}-{channel_slug(channel)}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _attach_day_chart(store: TableStore, sink: AlertSink, channel: str, root: Posted, day: str,
                      group: pd.DataFrame, reply: bool, warn: Callable[[str], None]) -> None:
    """The chart of a day message's top alert, in that message's thread."""
    top = group.sort_values("impact", ascending=False, kind="stable").iloc[0]
    stem = f"{day}-{channel_slug(channel)}"
    if reply:
        stem += f"-reply-{hashlib.sha256(alert_key(top).encode()).hexdigest()[:8]}"
    _attach_chart(store, sink, channel, root, day, top, stem, warn)


def _attach_chart(store: TableStore, sink: AlertSink, channel: str, root: Posted, day: str,
                  alert: pd.Series, stem: str, warn: Callable[[str], None]) -> None:
    """The alert's chart in the thread of ``root``; a failure only warns (text comes first)."""
    try:
        png = alert_chart(store, alert)
        sink.upload_png(channel, root, f"{stem}-chart", png,
                        title=upload_title(alert, day))
    except Exception as exc:  # noqa: BLE001 - any chart problem must not block the alert
        warn(f"{day}: chart for {channel} not attached ({type(exc).__name__}: {exc}); "
             "the alert text was delivered.")
