"""The daily job over the four assets, and the 09:00 UTC schedule that runs it for yesterday."""

import dagster as dg

from sentinel_pipeline.freshness import RAW_FRESHNESS_CHECK

ASSET_NAMES = ["raw_daily_costs", "cost_baselines", "cost_anomalies", "annotated_alerts"]

sentinel_daily_job = dg.define_asset_job(
    name="sentinel_daily_job",
    # The freshness check asks whether yesterday arrived: the sensor runs it, not this job.
    selection=(dg.AssetSelection.assets(*ASSET_NAMES)
               - dg.AssetSelection.checks(RAW_FRESHNESS_CHECK)),
    tags={"sentinel/pipeline": "daily"},
    description="Fetch, baseline, detect and annotate one day (or a range in a single run).",
)

sentinel_daily_schedule = dg.build_schedule_from_partitioned_job(
    sentinel_daily_job,
    name="sentinel_daily_schedule",
    hour_of_day=9,
    minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    tags={"sentinel/trigger": "schedule"},
    description="Every day at 09:00 UTC, runs the pipeline for yesterday's partition.",
)
