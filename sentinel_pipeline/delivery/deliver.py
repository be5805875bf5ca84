"""Deliver a day's new alerts once: skip what the ledger has, post the rest, record them."""

from __future__ import annotations

from dataclasses import dataclass

from sentinel_pipeline.delivery.ledger import DeliveryLedger, alert_key
from sentinel_pipeline.delivery.message import build_message
from sentinel_pipeline.delivery.sinks import AlertSink
from sentinel_pipeline.storage import TableStore


@dataclass
class DayDelivery:
    day: str
    sent: int
    already_sent: int
    reference: str = ""


def partition_link(dagster_url: str, day: str) -> str | None:
    """Link to the annotated_alerts partition in the Dagster UI, when the UI URL is known."""
    if not dagster_url:
        return None
    return f"{dagster_url.rstrip('/')}/assets/annotated_alerts?partition={day}"


def deliver_day(
    store: TableStore, sink: AlertSink, ledger: DeliveryLedger, day: str, dagster_url: str = ""
) -> DayDelivery:
    """Post the day's alerts that were never delivered; raises DeliveryError if the post fails."""
    from datetime import date

    alerts = store.read_partition("annotated_alerts", date.fromisoformat(day))
    if alerts is None or len(alerts) == 0:
        return DayDelivery(day, 0, 0)
    keys = [alert_key(row) for _, row in alerts.iterrows()]
    fresh = [not ledger.delivered(k) for k in keys]
    new = alerts[fresh]
    if len(new) == 0:
        return DayDelivery(day, 0, len(alerts))
    reference = sink.post(day, build_message(day, new, partition_link(dagster_url, day)))
    ledger.record([k for k, f in zip(keys, fresh, strict=True) if f], sink.destination, reference)
    return DayDelivery(day, len(new), len(alerts) - len(new), reference)
