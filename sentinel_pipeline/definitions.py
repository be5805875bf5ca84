"""The one Definitions object: assets, checks, jobs, schedules, sensors, and resources from the
environment."""

import dagster as dg

from sentinel_pipeline.defs.assets.alerts import annotated_alerts
from sentinel_pipeline.defs.assets.anomalies import cost_anomalies
from sentinel_pipeline.defs.assets.baselines import cost_baselines
from sentinel_pipeline.defs.assets.costs import raw_daily_costs
from sentinel_pipeline.defs.checks import raw_freshness_checks
from sentinel_pipeline.defs.jobs import sentinel_daily_job, sentinel_weekly_digest_job
from sentinel_pipeline.defs.resources import resources_from_environment
from sentinel_pipeline.defs.schedules import sentinel_daily_schedule, weekly_digest_schedule
from sentinel_pipeline.defs.sensors import (
    abandoned_cli_runs_sensor,
    alert_delivery_sensor,
    raw_freshness_sensor,
    restatement_sensor,
    run_failure_alert_sensor,
)

defs = dg.Definitions(
    assets=[raw_daily_costs, cost_baselines, cost_anomalies, annotated_alerts],
    asset_checks=raw_freshness_checks,
    jobs=[sentinel_daily_job, sentinel_weekly_digest_job],
    schedules=[sentinel_daily_schedule, weekly_digest_schedule],
    sensors=[restatement_sensor, alert_delivery_sensor, run_failure_alert_sensor,
             raw_freshness_sensor, abandoned_cli_runs_sensor],
    resources=resources_from_environment(),
)
