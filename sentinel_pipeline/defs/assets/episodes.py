"""anomaly_episodes: each alerted anomaly followed day by day, open to resolved or accepted."""

from datetime import date, timedelta

import dagster as dg
import pandas as pd

from sentinel_pipeline.defs.assets.common import (
    add_day_metadata,
    cents,
    day_spans,
    markdown_table,
    require_days,
    user_errors,
    write_days,
)
from sentinel_pipeline.defs.checks import EPISODE_CHECK_SPECS, episode_check_results
from sentinel_pipeline.defs.partitions import DAILY_TABLE, days_in_context, first_day
from sentinel_pipeline.defs.resources import StorageResource
from sentinel_pipeline.detection.episodes import (
    LIVE_STATUSES,
    REBUILD_DAYS,
    episodes_for_days,
    rebuild_previous,
)
from sentinel_pipeline.schema import EPISODE_COLUMNS, EPISODE_STATUSES, FEEDBACK_TABLE
from sentinel_pipeline.storage import TableStore

EPISODE_PREVIEW = ["service", "account_id", "region", "owner", "kind", "anomaly_start",
                   "status", "days", "impact_to_date", "verdict"]


def previous_episodes(store: TableStore, day: date,
                      feedback: pd.DataFrame | None) -> tuple[pd.DataFrame | None, str]:
    """The episodes of the day before ``day`` and where they came from: anomaly_episodes[D-1]
    when it was written, else replayed from cost_anomalies of the REBUILD_DAYS before ``day``
    (a first run, or a backfill starting later than the table)."""
    before = day - timedelta(days=1)
    stored = store.read_partition("anomaly_episodes", before)
    if stored is not None:
        return stored, f"anomaly_episodes {before}"
    start = max(day - timedelta(days=REBUILD_DAYS), first_day())
    have = [d for d in store.partitions("cost_anomalies") if start <= d <= before]
    if not have:
        return None, "none (no earlier cost_anomalies)"
    replayed = rebuild_previous({d: store.read_partition("cost_anomalies", d) for d in have},
                                feedback)
    return replayed, f"rebuilt from cost_anomalies {day_spans(have)}"


@dg.asset(
    **DAILY_TABLE,
    # Same-day dependency (partitions.py says why); the day before of anomaly_episodes itself is
    # read from storage.
    deps=["cost_anomalies"],
    check_specs=EPISODE_CHECK_SPECS,
    description=(
        "The life of each alerted anomaly: one row per episode (series, anomaly_start) live on "
        f"day D, with its status ({', '.join(EPISODE_STATUSES)}), days so far, $ impact to date, "
        "the alert it came from (alert_key, to follow up in its Slack thread) and the latest "
        "feedback. Computed from cost_anomalies[D], the episodes of D-1 (read from storage; "
        "replayed from earlier cost_anomalies when never written) and alert_feedback: an "
        "episode marked expected or planned is shown accepted once and then leaves, a "
        "resolved one is shown on the day it returned to expected. Drops are not episodes."
    ),
)
def anomaly_episodes(
    context: dg.AssetExecutionContext, storage: StorageResource
) -> dg.MaterializeResult:
    days = days_in_context(context)
    store = storage.store()
    with user_errors():
        require_days(store, "cost_anomalies", days, "anomaly_episodes")
        anomalies = {day: store.read_partition("cost_anomalies", day) for day in days}
        feedback = store.read_table(FEEDBACK_TABLE)
        previous, read_from = previous_episodes(store, days[0], feedback)
        context.log.info(f"anomaly_episodes: episodes of the day before from {read_from}")
        frames = episodes_for_days(anomalies, days, previous, feedback)
        write_days(context, store, "anomaly_episodes", frames, EPISODE_COLUMNS)
    for day in days:
        rows = frames[day]
        live = rows[rows["status"].isin(LIVE_STATUSES)] if len(rows) else rows
        top = live.sort_values("impact_to_date", ascending=False) if len(live) else live
        add_day_metadata(context, day, {
            "dagster/row_count": len(rows),
            **{status: int((rows["status"] == status).sum()) if len(rows) else 0
               for status in EPISODE_STATUSES},
            "open_impact": cents(live["impact_to_date"].sum() if len(live) else 0),
            "top_open_episodes": dg.MetadataValue.md(markdown_table(top, EPISODE_PREVIEW)),
        })
    return dg.MaterializeResult(
        check_results=episode_check_results(anomalies, frames),
        metadata={"previous_day_from": read_from},
    )
