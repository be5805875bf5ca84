"""The alert sensor: sends each new annotated alert to Slack (or the outbox) exactly once."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from sentinel_pipeline.delivery.deliver import deliver_day
from sentinel_pipeline.delivery.ledger import DeliveryLedger
from sentinel_pipeline.delivery.sinks import DeliveryError
from sentinel_pipeline.resources import AlertSinkResource, StorageResource

ALERTS_KEY = dg.AssetKey("annotated_alerts")
BATCH = 500


@dg.sensor(
    name="alert_delivery_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Walks new annotated_alerts materialisations (cursor = last event storage id) and "
        "posts each day's undelivered alerts; the delivery ledger in the data dir makes reruns "
        "and cursor resets safe."
    ),
)
def alert_delivery_sensor(
    context: dg.SensorEvaluationContext, storage: StorageResource, alert_sink: AlertSinkResource
) -> dg.SensorResult | dg.SkipReason:
    after = int(context.cursor) if context.cursor else 0
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=ALERTS_KEY, after_storage_id=after),
        limit=BATCH,
        ascending=True,
    ).records
    if not records:
        return dg.SkipReason("No new annotated_alerts materialisations.")
    store = storage.store()
    ledger = DeliveryLedger(store)
    sink = alert_sink.sink(store)
    oldest = (datetime.now(UTC).date() - timedelta(days=alert_sink.max_age_days)).isoformat()
    cursor, done = after, set()
    for record in records:
        day = record.partition_key
        if day and day < oldest and day not in done:
            context.log.info(f"{day}: older than {alert_sink.max_age_days} days, not posted")
            done.add(day)
        if day and day not in done:
            try:
                result = deliver_day(store, sink, ledger, day, alert_sink.dagster_url)
            except DeliveryError as exc:
                context.log.error(str(exc))
                break
            done.add(day)
            if result.sent:
                context.log.info(
                    f"{day}: sent {result.sent} alert(s) to {sink.destination} "
                    f"({result.already_sent} already sent) -> {result.reference}"
                )
        cursor = record.storage_id
    if cursor == after:
        return dg.SkipReason("Delivery failed; will retry on the next tick.")
    return dg.SensorResult(cursor=str(cursor))
