"""Sensors that talk to people: new alerts to Slack exactly once, and failed runs to Slack.

Both post through the ``alert_sink`` resource: Slack when SLACK_BOT_TOKEN is set, otherwise
the outbox folder under the data dir (dry run).
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from sentinel_pipeline.delivery.deliver import deliver_day
from sentinel_pipeline.delivery.failure import build_failure_message
from sentinel_pipeline.delivery.ledger import DeliveryLedger
from sentinel_pipeline.delivery.sinks import DeliveryError, OutboxSink
from sentinel_pipeline.resources import AlertSinkResource, StorageResource

ALERTS_KEY = dg.AssetKey("annotated_alerts")
BATCH = 500


@dg.sensor(
    name="alert_delivery_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Walks new annotated_alerts materialisations (cursor = last event storage id) and "
        "posts each day's undelivered alerts, one message per channel; the delivery ledger in "
        "the data dir makes reruns and cursor resets safe."
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
    router = alert_sink.router()
    store = storage.store()
    ledger = DeliveryLedger(store)
    sink = alert_sink.sink(store)
    oldest = (datetime.now(UTC).date() - timedelta(days=alert_sink.max_age_days)).isoformat()
    # The cursor advances only over records delivered without error, so a day that failed is
    # walked again next tick; days after it are still tried (the ledger skips what went out).
    cursor, blocked, done, too_old = after, False, set(), []
    for record in records:
        day = record.partition_key
        if day and day not in done:
            done.add(day)
            if day < oldest:
                too_old.append(day)
            else:
                try:
                    result = deliver_day(store, sink, ledger, router, day,
                                         alert_sink.dagster_url, charts=alert_sink.charts,
                                         warn=context.log.warning)
                except DeliveryError as exc:
                    context.log.error(f"{day}: {exc}")
                    blocked = True
                    if not exc.channel_only:
                        break  # Slack unreachable or the token refused: stop until next tick
                    continue
                for post in result.posts:
                    context.log.info(f"{day}: sent to {sink.destination} {post}")
        if not blocked:
            cursor = record.storage_id
    if too_old:  # one line, not one per day of a year's backfill
        context.log.info(f"{len(too_old)} day(s) {min(too_old)}..{max(too_old)} are older than "
                         f"{alert_sink.max_age_days} days: their alerts stay in the tables, "
                         "not posted")
    if cursor == after:
        return dg.SkipReason("Delivery failed; the alerts are retried on the next tick.")
    return dg.SensorResult(cursor=str(cursor))


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts a short message (job, run, failed step and error, link) to SLACK_CHANNEL "
    "when a Sentinel run fails, or writes it to the outbox in dry run.",
)
def run_failure_alert_sensor(
    context: dg.RunFailureSensorContext, storage: StorageResource, alert_sink: AlertSinkResource
) -> None:
    run = context.dagster_run
    steps = []
    for event in context.get_step_failure_events():
        error = getattr(event.event_specific_data, "error", None)
        steps.append((event.step_key or "?", error.message if error else event.message or ""))
    tags = run.tags
    partition = tags.get("dagster/partition")
    if not partition and tags.get("dagster/asset_partition_range_start"):
        partition = (f"{tags['dagster/asset_partition_range_start']} to "
                     f"{tags.get('dagster/asset_partition_range_end', '?')}")
    message = build_failure_message(run.job_name, run.run_id, steps,
                                    context.failure_event.message or "",
                                    alert_sink.dagster_url, partition)
    store = storage.store()
    sink = alert_sink.sink(store)
    name = f"run-failure-{run.run_id}"
    try:
        posted = sink.post(alert_sink.channel, name, message)
    except DeliveryError as exc:
        # Dagster moves this sensor's cursor past the run even when it raises, so keep the
        # message in the outbox before failing the tick (which shows the error in the UI).
        kept = OutboxSink(store).post(alert_sink.channel, name, message)
        raise DeliveryError(
            f"Run {run.run_id} failure alert not sent: {exc} (kept in {kept.reference})"
        ) from exc
    context.log.info(f"Run {run.run_id} failure sent to {sink.destination} -> {posted.reference}")
