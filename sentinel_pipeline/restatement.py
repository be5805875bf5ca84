"""The restatement sensor: re-fetch recent days whose costs were still estimated when loaded.

Cost Explorer marks recent days ``Estimated`` (and CUR rewrites an open billing period), so a
day loaded the morning after can change later. Once a UTC day, this sensor reads the last
``SENTINEL_RESTATE_DAYS`` partitions of raw_daily_costs and, if any row is ``estimated``,
requests one run of the daily job from the earliest such day to the last day already loaded
(never a day the 09:00 schedule has not loaded yet: the data of a day that just ended is far
from complete). A rerun replaces each
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


def loaded_days(store: TableStore, first: date, last: date) -> dict[date, bool]:
    """The days from first to last that raw_daily_costs holds, each with whether any of its
    rows is still estimated."""
    out = {}
    for i in range((last - first).days + 1):
        day = first + timedelta(days=i)
        rows = store.read_partition(RAW_TABLE, day)
        if rows is not None:
            out[day] = "estimated" in rows.columns and bool(rows["estimated"].any())
    return out


def restatement_request(days: list[date], today: date, end: date | None = None) -> dg.RunRequest:
    """One run of the daily job over [earliest estimated day, end] (end: yesterday unless
    given; later days depend on the restated ones through their baselines)."""
    start, end = min(days), end or today - timedelta(days=1)
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
        "still marked estimated, reruns the daily job from the earliest such day to the last "
        "loaded day (one run), so final costs replace the estimates and anomalies are "
        "recomputed."
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
    loaded = loaded_days(storage.store(), first, yesterday)
    days = [day for day, estimated in loaded.items() if estimated]
    if not days:
        return dg.SensorResult(
            skip_reason=f"No estimated costs in raw_daily_costs {first}..{yesterday}.",
            cursor=today.isoformat())
    last_loaded = max(loaded)
    context.log.info(f"{len(days)} day(s) still estimated ({days[0]}..{days[-1]}): "
                     f"rerunning {days[0]}..{last_loaded}")
    return dg.SensorResult(run_requests=[restatement_request(days, today, last_loaded)],
                           cursor=today.isoformat())
