"""The one Definitions object: assets, job, schedule, sensor and resources from the environment."""

import dagster as dg

from sentinel_pipeline.assets.alerts import annotated_alerts
from sentinel_pipeline.assets.anomalies import cost_anomalies
from sentinel_pipeline.assets.baselines import cost_baselines
from sentinel_pipeline.assets.costs import raw_daily_costs
from sentinel_pipeline.freshness import raw_freshness_checks, raw_freshness_sensor
from sentinel_pipeline.jobs import sentinel_daily_job, sentinel_daily_schedule
from sentinel_pipeline.resources import (
    AlertSinkResource,
    AnnotatorResource,
    CostSourceResource,
    DetectionResource,
    StorageResource,
)
from sentinel_pipeline.restatement import restatement_sensor
from sentinel_pipeline.sensors import alert_delivery_sensor, run_failure_alert_sensor
from sentinel_pipeline.settings import apply_defaults
from sentinel_pipeline.weekly_digest import sentinel_weekly_digest_job, weekly_digest_schedule

apply_defaults()

defs = dg.Definitions(
    assets=[raw_daily_costs, cost_baselines, cost_anomalies, annotated_alerts],
    asset_checks=raw_freshness_checks,
    jobs=[sentinel_daily_job, sentinel_weekly_digest_job],
    schedules=[sentinel_daily_schedule, weekly_digest_schedule],
    sensors=[restatement_sensor, alert_delivery_sensor, run_failure_alert_sensor,
             raw_freshness_sensor],
    resources={
        "storage": StorageResource(data_dir=dg.EnvVar("SENTINEL_DATA_DIR")),
        "source": CostSourceResource(
            source=dg.EnvVar("SENTINEL_SOURCE"),
            source_path=dg.EnvVar("SENTINEL_SOURCE_PATH"),
            cur_cost=dg.EnvVar("SENTINEL_CUR_COST"),
            cur_line_item_types=dg.EnvVar("SENTINEL_CUR_LINE_ITEM_TYPES"),
            ce_metric=dg.EnvVar("SENTINEL_CE_METRIC"),
            ce_record_types=dg.EnvVar("SENTINEL_CE_RECORD_TYPES"),
            restate_days=dg.EnvVar.int("SENTINEL_RESTATE_DAYS"),
        ),
        "detection": DetectionResource(),
        "annotator": AnnotatorResource(
            model=dg.EnvVar("SENTINEL_CLAUDE_MODEL"),
            api_key=dg.EnvVar("ANTHROPIC_API_KEY"),
        ),
        "alert_sink": AlertSinkResource(
            slack_bot_token=dg.EnvVar("SLACK_BOT_TOKEN"),
            channel=dg.EnvVar("SLACK_CHANNEL"),
            slack_api_url=dg.EnvVar("SENTINEL_SLACK_API_URL"),
            dagster_url=dg.EnvVar("SENTINEL_DAGSTER_URL"),
            routes_file=dg.EnvVar("SENTINEL_SLACK_ROUTES"),
        ),
    },
)
