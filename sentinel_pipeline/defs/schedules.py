"""The schedules: the daily run at 09:00 UTC for yesterday, the digest on Mondays at 09:30."""

import dagster as dg

from sentinel_pipeline.defs.jobs import DIGEST_OP, sentinel_daily_job, sentinel_weekly_digest_job
from sentinel_pipeline.delivery.digest import previous_week, week_label

sentinel_daily_schedule = dg.build_schedule_from_partitioned_job(
    sentinel_daily_job,
    name="sentinel_daily_schedule",
    hour_of_day=9,
    minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    tags={"sentinel/trigger": "schedule"},
    description="Every day at 09:00 UTC, runs the pipeline for yesterday's partition.",
)


@dg.schedule(
    name="weekly_digest_schedule",
    cron_schedule="30 9 * * 1",
    execution_timezone="UTC",
    job=sentinel_weekly_digest_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Mondays 09:30 UTC (after the daily run): the digest of the week that ended "
    "yesterday.",
)
def weekly_digest_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    start = previous_week(context.scheduled_execution_time.date())
    week = week_label(start)
    return dg.RunRequest(
        run_key=f"digest-{week}",
        run_config={"ops": {DIGEST_OP: {"config": {"week_start": start.isoformat()}}}},
        tags={"sentinel/digest_week": week},
    )
