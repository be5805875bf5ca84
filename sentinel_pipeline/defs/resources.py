"""Dagster resources: the small interfaces in front of storage, sources, annotation and Slack.

``resources_from_environment()`` configures them once (definitions.py) from the environment
variables of settings.py; the CLI and ``sentinel doctor`` read their settings through the same
resources. Tests build them directly with a tmp folder or a local server.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import date
from typing import Any, TypedDict, TypeVar

import dagster as dg
import pandas as pd
from pydantic import Field

from sentinel_pipeline import settings
from sentinel_pipeline.annotation.annotate import AnnotationStats, alert_history, annotate_day
from sentinel_pipeline.annotation.cache import AnnotationCache
from sentinel_pipeline.annotation.claude import ClaudeSettings, Usage
from sentinel_pipeline.delivery.feedback import feedback_hint, parse_reactions
from sentinel_pipeline.delivery.routing import Router, load_router
from sentinel_pipeline.delivery.sinks import AlertSink, OutboxSink, SlackSink
from sentinel_pipeline.detection import DetectionConfig
from sentinel_pipeline.errors import ConfigError
from sentinel_pipeline.settings import default
from sentinel_pipeline.sources.base import CostSource, RootCauses, SourceOptions, SourceResult
from sentinel_pipeline.sources.registry import SOURCES, make_source
from sentinel_pipeline.storage import TableStore

_LOG = logging.getLogger("sentinel.annotation")
ResourceT = TypeVar("ResourceT", bound=dg.ConfigurableResource)


class StorageResource(dg.ConfigurableResource):
    """Where the Parquet tables live: a local folder or an s3://bucket/prefix URL."""

    data_dir: str = Field(default=default("SENTINEL_DATA_DIR"), description="SENTINEL_DATA_DIR")

    def store(self) -> TableStore:
        return TableStore(self.data_dir)


class CostSourceResource(dg.ConfigurableResource):
    """Which billing data feeds raw_daily_costs: the named source from sources/registry.py,
    built with the options below (each source takes the ones it needs)."""

    source: str = Field(default=default("SENTINEL_SOURCE"),
                        description="SENTINEL_SOURCE: " + ", ".join(SOURCES))
    source_path: str = Field(default="", description="SENTINEL_SOURCE_PATH: folder or s3:// URL")
    focus_cost: str = Field(default=default("SENTINEL_FOCUS_COST"),
                            description="SENTINEL_FOCUS_COST: FOCUS cost column to sum")
    demo_series: int = Field(default=settings.DEMO_SERIES,
                             description="number of series the demo source makes")
    max_drill_downs: int = Field(
        default=settings.MAX_DRILL_DOWNS, ge=0,
        description="most alerted series a run drills into for root causes, largest $ impact "
        "first (each is one billed request on Cost Explorer)")
    ce_metric: str = Field(default=default("SENTINEL_CE_METRIC"),
                           description="SENTINEL_CE_METRIC: UnblendedCost, AmortizedCost, "
                           "NetUnblendedCost or NetAmortizedCost")
    ce_record_types: str = Field(
        default=default("SENTINEL_CE_RECORD_TYPES"),
        description="SENTINEL_CE_RECORD_TYPES: comma-separated RECORD_TYPE values detection "
        "looks at")
    restate_days: int = Field(
        default=int(default("SENTINEL_RESTATE_DAYS")),
        description="SENTINEL_RESTATE_DAYS: how far back the restatement sensor re-fetches days "
        "still estimated")
    cur_cost: str = Field(
        default=default("SENTINEL_CUR_COST"),
        description="SENTINEL_CUR_COST: unblended, net_unblended, amortized or net_amortized")
    cur_line_item_types: str = Field(
        default=default("SENTINEL_CUR_LINE_ITEM_TYPES"),
        description="SENTINEL_CUR_LINE_ITEM_TYPES: comma-separated CUR line item types counted "
        "(the others are reported in the metadata, not detected on)")

    owner_key: str = Field(
        default=default("SENTINEL_OWNER_KEY"),
        description="SENTINEL_OWNER_KEY: tag:<key> or cost_category:<name> that names each "
        "series' owner ('' = none)")

    athena_database: str = Field(
        default=default("SENTINEL_ATHENA_DATABASE"),
        description="SENTINEL_ATHENA_DATABASE: Glue database of the CUR 2.0 export table")
    athena_table: str = Field(
        default=default("SENTINEL_ATHENA_TABLE"),
        description="SENTINEL_ATHENA_TABLE: the CUR 2.0 Data Export table Athena queries")
    athena_workgroup: str = Field(
        default=default("SENTINEL_ATHENA_WORKGROUP"),
        description="SENTINEL_ATHENA_WORKGROUP: Athena workgroup the queries run in")
    athena_output: str = Field(
        default=default("SENTINEL_ATHENA_OUTPUT"),
        description="SENTINEL_ATHENA_OUTPUT: s3:// query result location ('' = the "
        "workgroup's)")
    athena_timeout_seconds: float = Field(
        default=settings.ATHENA_TIMEOUT_SECONDS, gt=0,
        description="seconds an Athena query may take before it is stopped and the run fails")

    def cost_source(self) -> CostSource:
        """The configured source; an unknown SENTINEL_SOURCE or a bad SENTINEL_OWNER_KEY is a
        ConfigError."""
        return make_source(self.source, SourceOptions(
            path=self.source_path, focus_cost=self.focus_cost, demo_series=self.demo_series,
            ce_metric=self.ce_metric, ce_record_types=self.ce_record_types,
            cur_cost=self.cur_cost, cur_line_item_types=self.cur_line_item_types,
            owner_key=self.owner_key, athena_database=self.athena_database,
            athena_table=self.athena_table, athena_workgroup=self.athena_workgroup,
            athena_output=self.athena_output, athena_timeout=self.athena_timeout_seconds))

    def fetch(self, start: date, end: date) -> SourceResult:
        """Daily cost rows for the days from start to end inclusive."""
        return self.cost_source().fetch(start, end)

    def root_causes(self, alerts: pd.DataFrame) -> RootCauses:
        """Where each alert's money went. A drill-down is a bonus: any failure is logged and
        leaves the column empty, it never fails the run that found the anomaly."""
        try:
            return self.cost_source().root_causes(alerts)
        except Exception as exc:
            dg.get_dagster_logger().warning(f"{self.source} root causes unavailable: {exc}")
            return RootCauses.none(len(alerts))


class DetectionResource(dg.ConfigurableResource):
    """Detector knobs, shared by the baseline, anomaly and alert assets of a run (defaults and
    their reasons: settings.py)."""

    method: str = Field(default=settings.METHOD,
                        description=" or ".join(settings.METHODS) + " (seed = the blog rule)")
    min_impact: float = Field(default=settings.MIN_IMPACT,
                              description="smallest $ change of a day to alert on")
    min_pct_change: float = Field(default=settings.MIN_PCT_CHANGE,
                                  description="smallest % change to alert on")
    score_threshold: float = Field(default=settings.SCORE_THRESHOLD,
                                   description="calibrated score: about P(Z > s) false "
                                   "alarms per series-day (3.75: 9 in 100,000)")
    lookback_days: int = Field(default=settings.LOOKBACK_DAYS,
                               description="days of history for the baseline (14-90)")
    alert_on_drops: bool = Field(default=settings.ALERT_ON_DROPS,
                                 description="also send cost drops to Slack")
    shard_series: int = Field(
        default=int(default("SENTINEL_SHARD_SERIES")), ge=0,
        description="SENTINEL_SHARD_SERIES: with SENTINEL_SHARDS, cost_baselines shards only "
        "above this many series, one shard per this many (0 = always all shards)")

    def config(self) -> DetectionConfig:
        """The validated knobs; a bad one is a ConfigError naming it and the allowed range."""
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

    model: str = Field(default=default("SENTINEL_CLAUDE_MODEL"),
                       description="SENTINEL_CLAUDE_MODEL")
    api_key: str | None = Field(default=None, repr=False,
                                description="ANTHROPIC_API_KEY (secret); unset: deterministic "
                                "explanations, no network")
    max_tokens: int = Field(default=settings.CLAUDE_MAX_TOKENS,
                            description="output tokens per request (256-32000)")
    timeout_seconds: float = Field(default=settings.CLAUDE_TIMEOUT_SECONDS,
                                   description="per HTTP attempt (0-600 s)")
    max_retries: int = Field(default=settings.CLAUDE_MAX_RETRIES,
                             description="retries on 429/5xx/timeouts (0-5)")
    max_anomalies_per_request: int = Field(
        default=settings.CLAUDE_MAX_ALERTS_PER_REQUEST,
        description="alerts explained by Claude per day (1-100), largest $ impact first; the "
        "rest get the deterministic explanation")

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
    channel: str = Field(default=default("SLACK_CHANNEL"), description="SLACK_CHANNEL")
    slack_api_url: str = Field(default=default("SENTINEL_SLACK_API_URL"),
                               description="SENTINEL_SLACK_API_URL")
    dagster_url: str = Field(default="", description="SENTINEL_DAGSTER_URL, for links")
    max_age_days: int = Field(
        default=settings.SLACK_MAX_AGE_DAYS,
        description="alerts about days older than this are not posted, so backfilling a year "
        "of history does not flood the channel (they stay in annotated_alerts)",
    )
    routes_file: str = Field(default="", description="SENTINEL_SLACK_ROUTES: YAML file routing "
                             "accounts/services to channels ('' = all to SLACK_CHANNEL)")
    charts: bool = Field(default=settings.SLACK_CHARTS,
                         description="attach a 30-day chart of the top alert")
    timeout_seconds: float = Field(default=settings.SLACK_TIMEOUT_SECONDS,
                                   description="per Slack HTTP request")
    feedback_days: int = Field(
        default=int(default("SENTINEL_FEEDBACK_DAYS")),
        description="SENTINEL_FEEDBACK_DAYS: alert messages of the last N days are read for "
        "feedback (reactions, thread replies)")
    feedback_users: str = Field(
        default="", description="SENTINEL_FEEDBACK_USERS: comma-separated Slack user IDs "
        "allowed to give feedback ('' = any person of the workspace)")
    feedback_reactions: str = Field(
        default="", description="reaction names per verdict, e.g. 'expected=white_check_mark,"
        "heavy_check_mark;planned=calendar;not_anomaly=x' ('' = those defaults)")

    def sink(self, store: TableStore) -> AlertSink:
        return self.feedback_reader() or OutboxSink(store)

    def feedback_reader(self) -> SlackSink | None:
        """Slack to read feedback from; None in dry run (the outbox has no feedback)."""
        if not self.slack_bot_token:
            return None
        return SlackSink(self.slack_bot_token, self.slack_api_url, self.timeout_seconds)

    def reactions(self) -> dict[str, tuple[str, ...]]:
        """Reaction names per verdict; ConfigError naming the mistake."""
        try:
            return parse_reactions(self.feedback_reactions)
        except ValueError as exc:
            raise ConfigError(f"{exc} (alert_sink resource, feedback_reactions).") from exc

    def allowed_users(self) -> list[str]:
        return [u.strip() for u in self.feedback_users.split(",") if u.strip()]

    def hint(self) -> str:
        """The line under each alert saying how to give feedback."""
        return feedback_hint(self.reactions())

    def router(self) -> Router:
        """Raises ConfigError naming the routes file and the fix when it is invalid."""
        return load_router(self.routes_file, self.channel)


def _env(name: str) -> Any:
    """``dg.EnvVar(name)`` when the variable is in the environment, else its default.

    EnvVar makes Dagster read the value when a run starts and show in the UI which variable
    feeds a field, but an EnvVar of an absent variable fails the run: so a variable left unset
    (or blank, where its default is not) gets the default of settings.py instead. Which
    variables exist is seen when the code location loads, as the process environment is.
    Nothing here writes os.environ.
    """
    value = os.environ.get(name)
    if value is None or (not value.strip() and default(name)):
        return default(name)
    return dg.EnvVar(name)


def _env_int(name: str) -> Any:
    value = _env(name)
    return dg.EnvVar.int(name) if isinstance(value, dg.EnvVar) else int(value)


class Resources(TypedDict):
    """The resources of the one Definitions object, by the name assets and sensors use."""

    storage: StorageResource
    source: CostSourceResource
    detection: DetectionResource
    annotator: AnnotatorResource
    alert_sink: AlertSinkResource


def resources_from_environment() -> Resources:
    """The resources of the one Definitions object, configured from the environment."""
    return {
        "storage": StorageResource(data_dir=_env("SENTINEL_DATA_DIR")),
        "source": CostSourceResource(
            source=_env("SENTINEL_SOURCE"),
            source_path=_env("SENTINEL_SOURCE_PATH"),
            focus_cost=_env("SENTINEL_FOCUS_COST"),
            cur_cost=_env("SENTINEL_CUR_COST"),
            cur_line_item_types=_env("SENTINEL_CUR_LINE_ITEM_TYPES"),
            ce_metric=_env("SENTINEL_CE_METRIC"),
            ce_record_types=_env("SENTINEL_CE_RECORD_TYPES"),
            restate_days=_env_int("SENTINEL_RESTATE_DAYS"),
            owner_key=_env("SENTINEL_OWNER_KEY"),
            athena_database=_env("SENTINEL_ATHENA_DATABASE"),
            athena_table=_env("SENTINEL_ATHENA_TABLE"),
            athena_workgroup=_env("SENTINEL_ATHENA_WORKGROUP"),
            athena_output=_env("SENTINEL_ATHENA_OUTPUT"),
        ),
        "detection": DetectionResource(shard_series=_env_int("SENTINEL_SHARD_SERIES")),
        "annotator": AnnotatorResource(
            model=_env("SENTINEL_CLAUDE_MODEL"),
            api_key=_env("ANTHROPIC_API_KEY") or None,
        ),
        "alert_sink": AlertSinkResource(
            slack_bot_token=_env("SLACK_BOT_TOKEN") or None,
            channel=_env("SLACK_CHANNEL"),
            slack_api_url=_env("SENTINEL_SLACK_API_URL"),
            dagster_url=_env("SENTINEL_DAGSTER_URL"),
            routes_file=_env("SENTINEL_SLACK_ROUTES"),
            feedback_days=_env_int("SENTINEL_FEEDBACK_DAYS"),
            feedback_users=_env("SENTINEL_FEEDBACK_USERS"),
        ),
    }


def resolved(resource: ResourceT) -> ResourceT:
    """A resource with its EnvVar fields read now: how the CLI and ``sentinel doctor`` see the
    same settings a run sees."""
    return resource.process_config_and_initialize()
