"""The one Definitions object: assets, job, schedule, sensor and resources from the environment."""

import os

import dagster as dg

from sentinel_pipeline.assets.alerts import annotated_alerts
from sentinel_pipeline.assets.anomalies import cost_anomalies
from sentinel_pipeline.assets.baselines import cost_baselines
from sentinel_pipeline.assets.costs import raw_daily_costs
from sentinel_pipeline.jobs import sentinel_daily_job, sentinel_daily_schedule
from sentinel_pipeline.resources import (
    DEFAULT_DATA_DIR,
    AlertSinkResource,
    AnnotatorResource,
    CostSourceResource,
    DetectionResource,
    StorageResource,
)
from sentinel_pipeline.sensors import alert_delivery_sensor


def _env(name: str, default: str | None) -> dg.EnvVar | str | None:
    """EnvVar when the variable is set (resolved at run time, shown as such in the UI), else the
    documented default: EnvVar alone would fail runs for every optional setting left unset."""
    return dg.EnvVar(name) if os.environ.get(name) else default


defs = dg.Definitions(
    assets=[raw_daily_costs, cost_baselines, cost_anomalies, annotated_alerts],
    jobs=[sentinel_daily_job],
    schedules=[sentinel_daily_schedule],
    sensors=[alert_delivery_sensor],
    resources={
        "storage": StorageResource(data_dir=_env("SENTINEL_DATA_DIR", DEFAULT_DATA_DIR)),
        "source": CostSourceResource(
            source=_env("SENTINEL_SOURCE", "demo"),
            source_path=_env("SENTINEL_SOURCE_PATH", ""),
        ),
        "detection": DetectionResource(),
        "annotator": AnnotatorResource(
            model=_env("SENTINEL_CLAUDE_MODEL", "claude-haiku-4-5"),
        ),
        "alert_sink": AlertSinkResource(
            slack_bot_token=_env("SLACK_BOT_TOKEN", None),
            channel=_env("SLACK_CHANNEL", "#cost-alerts"),
            slack_api_url=_env("SENTINEL_SLACK_API_URL", "https://slack.com/api/"),
            dagster_url=_env("SENTINEL_DAGSTER_URL", ""),
        ),
    },
)
