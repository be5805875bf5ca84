"""alert_feedback: what people said about alerts in Slack (reactions and thread replies),
one row per alert and user. Thin wiring around delivery.feedback.collect_feedback."""

from datetime import UTC, datetime

import dagster as dg

from sentinel_pipeline.defs.assets.common import markdown_table
from sentinel_pipeline.defs.resources import AlertSinkResource, StorageResource
from sentinel_pipeline.delivery.feedback import collect_feedback
from sentinel_pipeline.delivery.ledger import DeliveryLedger
from sentinel_pipeline.schema import FEEDBACK_TABLE, VERDICTS


@dg.asset(
    name=FEEDBACK_TABLE,
    group_name="sentinel",
    kinds={"parquet", "slack"},
    deps=["annotated_alerts"],
    description=(
        "Feedback on alerts from Slack, one row per (alert_key, user): a reaction "
        "(:white_check_mark: expected, :spiral_calendar_pad: planned, :x: not an anomaly) or a "
        "thread reply ('expected: <reason>') on an alert's own message of the last "
        "SENTINEL_FEEDBACK_DAYS days, from a real person of the workspace (SENTINEL_FEEDBACK_USERS "
        "restricts who). Removing the reaction removes the row. Read with reactions.get, "
        "conversations.replies and users.info: no public endpoint. Not partitioned "
        "({data}/alert_feedback/data.parquet); the feedback sensor runs it when something changed."
    ),
)
def alert_feedback(
    context: dg.AssetExecutionContext, storage: StorageResource, alert_sink: AlertSinkResource
) -> dg.MaterializeResult:
    store = storage.store()
    reader = alert_sink.feedback_reader()
    collected = collect_feedback(
        store, reader, DeliveryLedger(store), datetime.now(UTC).date(),
        days=alert_sink.feedback_days, reactions=alert_sink.reactions(),
        allowed_users=alert_sink.allowed_users())
    for error in collected.errors:
        context.log.warning(f"Feedback not read (its stored rows are kept): {error}")
    if collected.ignored:
        context.log.info(f"{len(collected.ignored)} reaction(s) or reply(ies) ignored, e.g. "
                         f"{collected.ignored[0]}")
    frame = collected.frame
    store.write_table(FEEDBACK_TABLE, frame)
    counts = frame["verdict"].value_counts() if len(frame) else None
    latest = frame.sort_values("seen_at", ascending=False, kind="stable") if len(frame) else frame
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(frame),
        "source": "slack" if reader is not None else "none (dry run: the outbox has no feedback)",
        "messages_read": collected.messages_read,
        "ignored": len(collected.ignored),
        **{f"verdict_{v}": int(counts.get(v, 0)) if counts is not None else 0
           for v in VERDICTS},
        "latest_feedback": dg.MetadataValue.md(markdown_table(
            latest, ["seen_at", "service", "account_id", "verdict", "user_name", "reason",
                     "source"])),
    })
