"""The restatement sensor: re-fetch recent days whose costs were still estimated when loaded.

Cost Explorer marks recent days ``Estimated`` (and CUR rewrites an open billing period), so a
day loaded the morning after can change later. Once a UTC day, this sensor reads the last
``SENTINEL_RESTATE_DAYS`` partitions of raw_daily_costs and, if any row is ``estimated``,
requests one run of the daily job from the earliest such day to yesterday. A rerun replaces each
day's files whole, so anomalies are updated, not duplicated, and the delivery ledger keeps an
alert already posted from being posted again. It only reads the table, so it works the same for
every source.
"""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from sentinel_pipeline.jobs import sentinel_daily_job
from sentinel_pipeline.partitions import partition_start_date
from sentinel_pipeline.resources import CostSourceResource, StorageResource
from sentinel_pipeline.storage import TableStore

RAW_TABLE = "raw_daily_costs"


def estimated_days(store: TableStore, first: date, last: date) -> list[date]:
    """Days from first to last whose raw_daily_costs file has any row with estimated=True."""
    out = []
    for i in range((last - first).days + 1):
        day = first + timedelta(days=i)
        rows = store.read_partition(RAW_TABLE, day)
        if rows is not None and "estimated" in rows.columns and bool(rows["estimated"].any()):
            out.append(day)
    return out


def restatement_request(days: list[date], today: date) -> dg.RunRequest:
    """One run of the daily job over [earliest estimated day, yesterday]."""
    start, end = min(days), today - timedelta(days=1)
    tags = {"sentinel/trigger": "restatement",
            "sentinel/estimated_days": ",".join(d.isoformat() for d in days)}
    run_key = f"restatement-{today.isoformat()}"
    if start == end:
        return dg.RunRequest(run_key=run_key, partition_key=start.isoformat(), tags=tags)
    tags |= {"dagster/asset_partition_range_start": start.isoformat(),
             "dagster/asset_partition_range_end": end.isoformat()}
    return dg.RunRequest(run_key=run_key, tags=tags)


@dg.sensor(
    name="restatement_sensor",
    job=sentinel_daily_job,
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Once a UTC day: if raw_daily_costs of the last SENTINEL_RESTATE_DAYS days holds rows "
        "still marked estimated, reruns the daily job from the earliest such day to yesterday "
        "(one run), so final costs replace the estimates and anomalies are recomputed."
    ),
)
def restatement_sensor(
    context: dg.SensorEvaluationContext, storage: StorageResource, source: CostSourceResource
) -> dg.SensorResult | dg.SkipReason:
    today = datetime.now(UTC).date()
    if context.cursor == today.isoformat():
        return dg.SkipReason(f"Already checked for estimated days on {today}.")
    yesterday = today - timedelta(days=1)
    first = max(yesterday - timedelta(days=max(source.restate_days, 1) - 1),
                date.fromisoformat(partition_start_date()))
    if first > yesterday:
        return dg.SkipReason("No complete day to check yet.")
    days = estimated_days(storage.store(), first, yesterday)
    if not days:
        return dg.SensorResult(
            skip_reason=f"No estimated costs in raw_daily_costs {first}..{yesterday}.",
            cursor=today.isoformat())
    context.log.info(f"{len(days)} day(s) still estimated ({days[0]}..{days[-1]}): "
                     f"rerunning {days[0]}..{yesterday}")
    return dg.SensorResult(run_requests=[restatement_request(days, today)],
                           cursor=today.isoformat())
