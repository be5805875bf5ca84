"""Deliver a day's new alerts once: skip what the ledger has, post the rest per channel.

One message per (day, channel). A day already reported in a channel gets the alerts a rerun
found later as a reply in that message's thread. The ledger is written right after each
successful post, so a failure on a later channel never reposts an earlier one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from sentinel_pipeline.delivery.chart import alert_chart
from sentinel_pipeline.delivery.ledger import DeliveryLedger, alert_key
from sentinel_pipeline.delivery.message import build_message
from sentinel_pipeline.delivery.routing import Router
from sentinel_pipeline.delivery.sinks import AlertSink, DeliveryError, Posted, channel_slug
from sentinel_pipeline.storage import TableStore


@dataclass
class DayDelivery:
    day: str
    sent: int = 0
    already_sent: int = 0
    posts: list[str] = field(default_factory=list)  # "channel: n alert(s) [reply] -> ref"


def partition_link(dagster_url: str, day: str, asset: str = "annotated_alerts") -> str | None:
    """The asset's partition page in the Dagster UI (the link the UI itself builds)."""
    if not dagster_url:
        return None
    return f"{dagster_url.rstrip('/')}/assets/{asset}?view=partitions&partition={day}"


def _warn_nowhere(_: str) -> None:
    return None


def deliver_day(
    store: TableStore,
    sink: AlertSink,
    ledger: DeliveryLedger,
    router: Router,
    day: str,
    dagster_url: str = "",
    charts: bool = True,
    warn: Callable[[str], None] = _warn_nowhere,
) -> DayDelivery:
    """Post the day's alerts that were never delivered, one message per channel.

    Raises DeliveryError if a post failed (after trying the other channels when the refusal was
    about one channel); what was posted before is already in the ledger.
    """
    result = DayDelivery(day)
    alerts = store.read_partition("annotated_alerts", date.fromisoformat(day))
    if alerts is None or len(alerts) == 0:
        return result
    alerts = alerts.reset_index(drop=True)
    # into=dict (pandas' default) types each row dict[Any, Any]: the column names are strings.
    keys = pd.Series([alert_key(row) for row in alerts.to_dict("records", into=dict)],
                     index=alerts.index)
    fresh = ~keys.map(ledger.delivered).astype(bool)
    result.already_sent = int((~fresh).sum())
    new = alerts[fresh]
    if len(new) == 0:
        return result
    channels = router.channels(new)
    failures: list[DeliveryError] = []
    for channel in sorted(set(channels)):
        group = new[channels == channel]
        group_keys = keys[group.index].tolist()
        previous = ledger.message(day, channel)
        message = build_message(day, group, partition_link(dagster_url, day),
                                reply=previous is not None)
        try:
            posted = sink.post(channel, day, message,
                               thread_ts=previous.ts if previous else None)
        except DeliveryError as exc:
            failures.append(exc)
            if exc.channel_only:
                continue  # the other channels may still be fine
            break  # Slack unreachable or the token refused: the next tick retries
        ledger.record(group_keys, channel, sink.destination, posted.reference, day=day,
                      message=None if previous else posted)
        result.sent += len(group)
        result.posts.append(f"{channel}: {len(group)} alert(s)"
                            f"{' as a thread reply' if previous else ''} -> {posted.reference}")
        if charts:
            _attach_chart(store, sink, channel, previous or posted, day, group,
                          previous is not None, warn)
    if failures:
        raise DeliveryError(" | ".join(str(f) for f in failures),
                            channel_only=all(f.channel_only for f in failures))
    return result


def _attach_chart(store: TableStore, sink: AlertSink, channel: str, root: Posted, day: str,
                  group: pd.DataFrame, reply: bool, warn: Callable[[str], None]) -> None:
    """The top alert's chart in the message's thread; a failure only warns (text comes first)."""
    top = group.sort_values("impact", ascending=False, kind="stable").iloc[0]
    stem = f"{day}-{channel_slug(channel)}"
    if reply:
        stem += f"-reply-{hashlib.sha256(alert_key(top).encode()).hexdigest()[:8]}"
    try:
        png = alert_chart(store, top)
        sink.upload_png(channel, root, f"{stem}-chart", png,
                        title=f"{top['service']} ({top['account_id']}, {top['region']}), {day}")
    except Exception as exc:  # noqa: BLE001 - any chart problem must not block the alert
        warn(f"{day}: chart for {channel} not attached ({type(exc).__name__}: {exc}); "
             "the alert text was delivered.")
