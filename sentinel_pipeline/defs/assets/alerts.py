"""annotated_alerts: the anomalies worth telling people about, each explained in plain words."""

import dagster as dg

from sentinel_pipeline.defs.assets.common import (
    add_day_metadata,
    impact_above_expected,
    markdown_table,
    require_days,
    user_errors,
    write_days,
)
from sentinel_pipeline.defs.checks import ALERT_CHECK_SPECS, alert_check_results
from sentinel_pipeline.defs.partitions import DAILY_TABLE, days_in_context
from sentinel_pipeline.defs.resources import (
    AnnotatorResource,
    CostSourceResource,
    StorageResource,
)
from sentinel_pipeline.schema import ALERT_COLUMNS


@dg.asset(
    **DAILY_TABLE,
    # anomaly_episodes first: the alert sensor posts what this writes, and the follow-ups in
    # each alert's thread read the episodes of the same day.
    deps=["cost_anomalies", "anomaly_episodes"],
    check_specs=ALERT_CHECK_SPECS,
    description=(
        "Alerts to send: the anomalies that open an episode (alert=True; drops only with "
        "alert_on_drops), each with an explanation, likely cause, where to look, action "
        "(stop/review/accept) and confidence, written by Claude when ANTHROPIC_API_KEY is set. "
        "The alert sensor posts new rows to Slack."
    ),
)
def annotated_alerts(
    context: dg.AssetExecutionContext,
    storage: StorageResource,
    annotator: AnnotatorResource,
    source: CostSourceResource,
) -> dg.MaterializeResult:
    days = days_in_context(context)
    store = storage.store()
    with user_errors():
        require_days(store, "cost_anomalies", days, "annotated_alerts")
        to_explain = {}
        for day in days:
            anomalies = store.read_partition("cost_anomalies", day)
            assert anomalies is not None  # required above
            to_explain[day] = anomalies[anomalies["alert"]].reset_index(drop=True)
        frames, stats = annotator.explain_days(store, to_explain, context.log)
        # Which tag or cost category the owners come from (an extra column): the message can
        # then say "untagged" rather than nothing when a series has no owner.
        frames = {day: frame.assign(owner_key=source.owner_key) for day, frame in frames.items()}
        write_days(context, store, "annotated_alerts", frames, ALERT_COLUMNS)
    for day in days:
        alerts = frames[day]
        top = alerts.sort_values("impact", ascending=False) if len(alerts) else alerts
        add_day_metadata(context, day, {
            "dagster/row_count": len(alerts),
            "alerts": len(alerts),
            "annotators": ", ".join(sorted(alerts["annotator"].unique())) if len(alerts) else "",
            "total_impact": impact_above_expected(alerts),
            "alerts_preview": dg.MetadataValue.md(markdown_table(
                top, ["usage_date", "service", "account_id", "impact", "kind", "explanation"])),
        })
    # Claude's usage is counted per run (one batch of requests for all its days).
    return dg.MaterializeResult(
        check_results=alert_check_results(frames),
        metadata=stats.metadata(),
    )
