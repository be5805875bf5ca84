"""Dagster resources: the small interfaces in front of storage, sources, annotation and Slack.

Each is configured once in definitions.py from the environment; tests build them directly with
a tmp folder or a local server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date

import dagster as dg
import pandas as pd
from pydantic import Field

from sentinel_pipeline.annotation.annotate import AnnotationStats, alert_history, annotate_day
from sentinel_pipeline.annotation.cache import AnnotationCache
from sentinel_pipeline.annotation.claude import ClaudeSettings, Usage
from sentinel_pipeline.delivery.routing import Router, load_router
from sentinel_pipeline.delivery.sinks import AlertSink, OutboxSink, SlackSink
from sentinel_pipeline.detection import METHODS, DetectionConfig
from sentinel_pipeline.errors import ConfigError
from sentinel_pipeline.settings import DEFAULTS
from sentinel_pipeline.storage import TableStore

DEFAULT_DATA_DIR = DEFAULTS["SENTINEL_DATA_DIR"]
_LOG = logging.getLogger("sentinel.annotation")
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
    max_drill_downs: int = Field(
        default=100, ge=0,
        description="most alerted series a run drills into for root causes, largest $ impact "
        "first (each is one billed request on Cost Explorer)")
    ce_metric: str = Field(
        default=DEFAULTS["SENTINEL_CE_METRIC"],
        description="SENTINEL_CE_METRIC: UnblendedCost, AmortizedCost, NetUnblendedCost or "
        "NetAmortizedCost")
    ce_record_types: str = Field(
        default=DEFAULTS["SENTINEL_CE_RECORD_TYPES"],
        description="SENTINEL_CE_RECORD_TYPES: comma-separated RECORD_TYPE values detection "
        "looks at")
    restate_days: int = Field(
        default=int(DEFAULTS["SENTINEL_RESTATE_DAYS"]),
        description="SENTINEL_RESTATE_DAYS: how far back the restatement sensor re-fetches days "
        "still estimated")
    cur_cost: str = Field(
        default=DEFAULTS["SENTINEL_CUR_COST"],
        description="SENTINEL_CUR_COST: unblended, net_unblended, amortized or net_amortized")
    cur_line_item_types: str = Field(
        default=DEFAULTS["SENTINEL_CUR_LINE_ITEM_TYPES"],
        description="SENTINEL_CUR_LINE_ITEM_TYPES: comma-separated CUR line item types counted "
        "(the others are reported in the metadata, not detected on)")

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
        if self.source == "cost_explorer":
            from sentinel_pipeline.sources.cost_explorer import fetch_costs

            return fetch_costs(start, end, self.ce_metric, self.ce_record_types.split(","))
        if self.source == "cur":
            from sentinel_pipeline.sources.cur import read_cur

            return read_cur(self.source_path, start, end, cost=self.cur_cost,
                            line_item_types=self.cur_line_item_types)
        raise ConfigError(
            f"Unknown SENTINEL_SOURCE={self.source!r}: choose one of {', '.join(SOURCES)}."
        )

    def root_causes(self, anomalies: pd.DataFrame) -> list[str]:
        """For each anomaly row, the JSON list of its top contributors ('' if not available).

        Cost Explorer, CUR and FOCUS look below the series (region, usage type, resource);
        the demo source splits its series into typical usage types.
        """
        if self.source == "cost_explorer":
            from sentinel_pipeline.sources.cost_explorer import root_causes

            return root_causes(anomalies, self.ce_metric, self.ce_record_types.split(","))
        if self.source in ("cur", "focus"):
            return self._file_root_causes(anomalies)
        if self.source == "demo":
            from sentinel_pipeline.sources.demo_detail import demo_root_causes

            return demo_root_causes(anomalies, self.demo_series)
        return ["" for _ in range(len(anomalies))]

    def _file_root_causes(self, anomalies: pd.DataFrame) -> list[str]:
        """CUR / FOCUS drill-down; a failure is logged and leaves the column empty, never
        fails a run."""
        from sentinel_pipeline.sources.cur import cur_root_causes
        from sentinel_pipeline.sources.files import focus_root_causes

        try:
            if self.source == "cur":
                return cur_root_causes(self.source_path, anomalies, cost=self.cur_cost,
                                       line_item_types=self.cur_line_item_types)
            return focus_root_causes(self.source_path, anomalies, cost_column=self.cost_column)
        except Exception as exc:  # a drill-down is a bonus: it never fails the run
            dg.get_dagster_logger().warning(f"{self.source} root causes unavailable: {exc}")
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
    """Writes the explanation of each alert: Claude when a key is set, else the deterministic one.

    Any failure of the model falls back per alert (annotator=fallback) with a warning; it never
    fails the run. The key is only handed to the anthropic client, never logged or stored.
    """

    model: str = Field(default="claude-haiku-4-5", description="SENTINEL_CLAUDE_MODEL")
    api_key: str | None = Field(default=None, repr=False,
                                description="ANTHROPIC_API_KEY (secret); unset: deterministic "
                                "explanations, no network")
    max_tokens: int = Field(default=8000, description="output tokens per request (256-32000)")
    timeout_seconds: float = Field(default=60.0, description="per HTTP attempt (0-600 s)")
    max_retries: int = Field(default=2, description="retries on 429/5xx/timeouts (0-5)")
    max_anomalies_per_request: int = Field(
        default=40, description="alerts explained by Claude per day (1-100), largest $ impact "
        "first; the rest get the deterministic explanation")

    def claude_settings(self) -> ClaudeSettings | None:
        """The request settings, or None when no key is set; bad bounds are a ConfigError."""
        checks = [
            (256 <= self.max_tokens <= 32000, "max_tokens must be between 256 and 32000"),
            (0 < self.timeout_seconds <= 600, "timeout_seconds must be in (0, 600]"),
            (0 <= self.max_retries <= 5, "max_retries must be between 0 and 5"),
            (1 <= self.max_anomalies_per_request <= 100,
             "max_anomalies_per_request must be between 1 and 100"),
            (bool(self.model.strip()), "SENTINEL_CLAUDE_MODEL is empty: set a model id, e.g. "
             "claude-haiku-4-5"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"annotator resource: {message}.")
        api_key = (self.api_key or "").strip()
        if not api_key:
            return None
        return ClaudeSettings(api_key=api_key, model=self.model.strip(),
                              max_tokens=self.max_tokens, timeout_seconds=self.timeout_seconds,
                              max_retries=self.max_retries)

    def explain(
        self,
        anomalies: pd.DataFrame,
        day: date | None = None,
        history: pd.DataFrame | None = None,
        cache: AnnotationCache | None = None,
        log: logging.Logger | None = None,
    ) -> tuple[pd.DataFrame, AnnotationStats]:
        """One day's alerts explained, and what it cost (tokens, requests, cache hits)."""
        settings = self.claude_settings()
        stats = AnnotationStats(usage=Usage(model=self.model))
        if day is None:
            day = pd.Timestamp(anomalies["usage_date"].iloc[0]).date() if len(anomalies) \
                else date.today()
        frame = annotate_day(anomalies, day, settings, stats, log or _LOG, history=history,
                             cache=cache, max_per_request=self.max_anomalies_per_request)
        return frame, stats

    def explain_days(
        self, store: TableStore, alerts_by_day: Mapping[date, pd.DataFrame], log: logging.Logger
    ) -> tuple[dict[date, pd.DataFrame], AnnotationStats]:
        """Every day of a run: each series' last 30 days read once, one request per day."""
        settings = self.claude_settings()
        stats = AnnotationStats(usage=Usage(model=self.model))
        if settings is None:
            if any(len(f) for f in alerts_by_day.values()):
                log.info("ANTHROPIC_API_KEY is not set: alerts get the deterministic "
                         "explanation (annotator=fallback)")
            history: dict[date, pd.DataFrame] = {}
        else:
            history = alert_history(store, alerts_by_day)
        cache = AnnotationCache(store)
        frames = {
            day: annotate_day(alerts, day, settings, stats, log, history=history.get(day),
                              cache=cache, max_per_request=self.max_anomalies_per_request)
            for day, alerts in alerts_by_day.items()
        }
        return frames, stats


class AlertSinkResource(dg.ConfigurableResource):
    """Slack when a bot token is set, otherwise the outbox folder under the data dir."""

    slack_bot_token: str | None = Field(default=None, repr=False,
                                        description="SLACK_BOT_TOKEN (secret)")
    channel: str = Field(default="#cost-alerts", description="SLACK_CHANNEL")
    slack_api_url: str = Field(default="https://slack.com/api/",
                               description="SENTINEL_SLACK_API_URL")
    dagster_url: str = Field(default="", description="SENTINEL_DAGSTER_URL, for links")
    max_age_days: int = Field(
        default=7,
        description="alerts about days older than this are not posted, so backfilling a year "
        "of history does not flood the channel (they stay in annotated_alerts)",
    )
    routes_file: str = Field(default="", description="SENTINEL_SLACK_ROUTES: YAML file routing "
                             "accounts/services to channels ('' = all to SLACK_CHANNEL)")
    charts: bool = Field(default=True, description="attach a 30-day chart of the top alert")
    timeout_seconds: float = Field(default=30.0, description="per Slack HTTP request")

    def sink(self, store: TableStore) -> AlertSink:
        if self.slack_bot_token:
            return SlackSink(self.slack_bot_token, self.slack_api_url, self.timeout_seconds)
        return OutboxSink(store)

    def router(self) -> Router:
        """Raises ConfigError naming the routes file and the fix when it is invalid."""
        return load_router(self.routes_file, self.channel)
