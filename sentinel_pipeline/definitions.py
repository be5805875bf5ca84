"""The one Definitions object: assets, job, schedule, sensor and resources from the environment."""

import dagster as dg

from sentinel_pipeline.assets.alerts import annotated_alerts
from sentinel_pipeline.assets.anomalies import cost_anomalies
from sentinel_pipeline.assets.baselines import cost_baselines
from sentinel_pipeline.assets.costs import raw_daily_costs
from sentinel_pipeline.jobs import sentinel_daily_job, sentinel_daily_schedule
from sentinel_pipeline.resources import (
    AlertSinkResource,
    AnnotatorResource,
    CostSourceResource,
    DetectionResource,
    StorageResource,
)
from sentinel_pipeline.sensors import alert_delivery_sensor
from sentinel_pipeline.settings import apply_defaults

apply_defaults()

defs = dg.Definitions(
    assets=[raw_daily_costs, cost_baselines, cost_anomalies, annotated_alerts],
    jobs=[sentinel_daily_job],
    schedules=[sentinel_daily_schedule],
    sensors=[alert_delivery_sensor],
    resources={
        "storage": StorageResource(data_dir=dg.EnvVar("SENTINEL_DATA_DIR")),
        "source": CostSourceResource(
            source=dg.EnvVar("SENTINEL_SOURCE"),
            source_path=dg.EnvVar("SENTINEL_SOURCE_PATH"),
        ),
        "detection": DetectionResource(),
        "annotator": AnnotatorResource(model=dg.EnvVar("SENTINEL_CLAUDE_MODEL")),
        "alert_sink": AlertSinkResource(
            slack_bot_token=dg.EnvVar("SLACK_BOT_TOKEN"),
            channel=dg.EnvVar("SLACK_CHANNEL"),
            slack_api_url=dg.EnvVar("SENTINEL_SLACK_API_URL"),
            dagster_url=dg.EnvVar("SENTINEL_DAGSTER_URL"),
        ),
    },
)
