"""Dagster resources: the small interfaces in front of storage, sources, annotation and Slack.

Each is configured once in definitions.py from the environment; tests build them directly with
a tmp folder or a local server.
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import pandas as pd
from pydantic import Field

from sentinel_pipeline.annotation import fallback
from sentinel_pipeline.delivery.sinks import AlertSink, OutboxSink, SlackSink
from sentinel_pipeline.detection import METHODS, DetectionConfig
from sentinel_pipeline.errors import ConfigError
from sentinel_pipeline.settings import DEFAULTS
from sentinel_pipeline.storage import TableStore

DEFAULT_DATA_DIR = DEFAULTS["SENTINEL_DATA_DIR"]
SOURCES: tuple[str, ...] = ("demo", "focus", "cost_explorer", "cur")


class StorageResource(dg.ConfigurableResource):
    """Where the Parquet tables live: a local folder or an s3://bucket/prefix URL."""

    data_dir: str = Field(default=DEFAULT_DATA_DIR, description="SENTINEL_DATA_DIR")

    def store(self) -> TableStore:
        return TableStore(self.data_dir)


class CostSourceResource(dg.ConfigurableResource):
    """Which billing data feeds raw_daily_costs."""

    source: str = Field(default="demo", description="SENTINEL_SOURCE: " + ", ".join(SOURCES))
    source_path: str = Field(default="", description="SENTINEL_SOURCE_PATH: folder or s3:// URL")
    cost_column: str = Field(default="BilledCost", description="FOCUS cost column to sum")
    demo_series: int = Field(default=30, description="number of series the demo source makes")

    def fetch(self, start: date, end: date) -> pd.DataFrame:
        """Daily cost rows for the days from start to end inclusive."""
        if self.source == "demo":
            from sentinel_pipeline.sources.demo import generate_demo_costs

            return generate_demo_costs(start, end, series_count=self.demo_series)
        if self.source == "focus":
            from sentinel_pipeline.sources.files import read_cost_files

            if not self.source_path:
                raise ConfigError(
                    "SENTINEL_SOURCE=focus needs SENTINEL_SOURCE_PATH: set it to the folder or "
                    "s3:// prefix that holds your FOCUS exports."
                )
            return read_cost_files(self.source_path, start, end, cost_column=self.cost_column)
        if self.source in SOURCES:
            raise ConfigError(
                f"SENTINEL_SOURCE={self.source} is not available in this version yet: use demo "
                "or focus (export FOCUS files from AWS Data Exports)."
            )
        raise ConfigError(
            f"Unknown SENTINEL_SOURCE={self.source!r}: choose one of {', '.join(SOURCES)}."
        )

    def root_causes(self, anomalies: pd.DataFrame) -> list[str]:
        """For each anomaly row, the JSON list of its top contributors ('' if not available).

        Only sources that see below the series (Cost Explorer, CUR) can answer; the others
        return '' for every row.
        """
        return ["" for _ in range(len(anomalies))]


class DetectionResource(dg.ConfigurableResource):
    """Detector knobs, shared by the baseline, anomaly and alert assets of a run."""

    method: str = Field(default="robust", description="robust (default) or seed (blog rule)")
    min_impact: float = Field(default=20.0, description="smallest $ change of a day to alert on")
    min_pct_change: float = Field(default=20.0, description="smallest % change to alert on")
    score_threshold: float = Field(default=4.0, description="robust standard deviations")
    lookback_days: int = Field(default=63, description="days of history for the baseline")
    alert_on_drops: bool = Field(default=False, description="also send cost drops to Slack")

    def config(self) -> DetectionConfig:
        if self.method not in METHODS:
            raise ConfigError(
                f"Unknown detection method {self.method!r}: choose one of {', '.join(METHODS)}."
            )
        try:
            return DetectionConfig(
                method=self.method,
                min_impact=self.min_impact,
                min_pct_change=self.min_pct_change,
                score_threshold=self.score_threshold,
                lookback_days=self.lookback_days,
                alert_on_drops=self.alert_on_drops,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc


class AnnotatorResource(dg.ConfigurableResource):
    """Writes the explanation of each alert. Claude comes behind this same method."""

    model: str = Field(default="claude-haiku-4-5", description="SENTINEL_CLAUDE_MODEL")

    def explain(self, anomalies: pd.DataFrame) -> pd.DataFrame:
        return fallback.explain(anomalies)


class AlertSinkResource(dg.ConfigurableResource):
    """Slack when a bot token is set, otherwise the outbox folder under the data dir."""

    slack_bot_token: str | None = Field(default=None, description="SLACK_BOT_TOKEN (secret)")
    channel: str = Field(default="#cost-alerts", description="SLACK_CHANNEL")
    slack_api_url: str = Field(default="https://slack.com/api/",
                               description="SENTINEL_SLACK_API_URL")
    dagster_url: str = Field(default="", description="SENTINEL_DAGSTER_URL, for links")
    max_age_days: int = Field(
        default=7,
        description="alerts about days older than this are not posted, so backfilling a year "
        "of history does not flood the channel (they stay in annotated_alerts)",
    )

    def sink(self, store: TableStore) -> AlertSink:
        if self.slack_bot_token:
            return SlackSink(self.slack_bot_token, self.channel, self.slack_api_url)
        return OutboxSink(store, self.channel)
