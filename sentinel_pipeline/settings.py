"""Every setting Sentinel has, with its default: the one place to look a default up.

Two kinds:
- Environment variables (``VARIABLES``): the deployment's settings (DESIGN.md, Configuration).
  Dagster resources read them with ``dg.EnvVar`` (``defs/resources.py``); the CLI and
  ``sentinel doctor`` read them through those same resources. Nothing here writes
  ``os.environ``.
- Tuning knobs (the constants below): resource config a user changes in the Dagster UI's
  launchpad or with ``sentinel backfill`` options, never from the environment.

This module imports nothing of Sentinel's and nothing of Dagster, so the library may use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    meaning: str
    secret: bool = False


VARIABLES: dict[str, Variable] = {v.name: v for v in (
    Variable("SENTINEL_SOURCE", "demo", "demo, focus, cost_explorer or cur"),
    Variable("SENTINEL_SOURCE_PATH", "", "folder or s3:// URL of the FOCUS / CUR 2.0 exports"),
    Variable("SENTINEL_DATA_DIR", "./.sentinel/data", "where the Parquet tables live"),
    Variable("SENTINEL_START_DATE", "2025-01-01", "first daily partition (YYYY-MM-DD)"),
    Variable("SENTINEL_FOCUS_COST", "BilledCost",
             "FOCUS cost column: BilledCost, EffectiveCost, ListCost or ContractedCost"),
    Variable("SENTINEL_CUR_COST", "unblended",
             "unblended, net_unblended, amortized or net_amortized"),
    Variable("SENTINEL_CUR_LINE_ITEM_TYPES", "Usage,DiscountedUsage,SavingsPlanCoveredUsage",
             "comma-separated CUR line item types detection looks at"),
    Variable("SENTINEL_CE_METRIC", "UnblendedCost",
             "UnblendedCost, AmortizedCost, NetUnblendedCost or NetAmortizedCost"),
    Variable("SENTINEL_CE_RECORD_TYPES", "Usage",
             "comma-separated Cost Explorer RECORD_TYPE values detection looks at"),
    Variable("SENTINEL_ATHENA_DATABASE", "",
             "athena source: Glue database of the CUR 2.0 Data Export table"),
    Variable("SENTINEL_ATHENA_TABLE", "",
             "athena source: the CUR 2.0 Data Export table (partitioned by billing_period)"),
    Variable("SENTINEL_ATHENA_WORKGROUP", "primary", "athena source: workgroup queries run in"),
    Variable("SENTINEL_ATHENA_OUTPUT", "",
             "athena source: s3:// query result location ('' = the workgroup's own)"),
    Variable("SENTINEL_OWNER_KEY", "",
             "tag:<key> or cost_category:<name> keying series by owner too, e.g. tag:team "
             "('' = no owner)"),
    Variable("SENTINEL_RESTATE_DAYS", "14",
             "how far back the restatement sensor re-fetches days still estimated"),
    Variable("SENTINEL_CLAUDE_MODEL", "claude-haiku-4-5", "Claude model that explains alerts"),
    Variable("ANTHROPIC_API_KEY", "", "unset: deterministic explanations, no network",
             secret=True),
    Variable("SLACK_BOT_TOKEN", "", "unset: alerts go to the outbox folder (dry run)",
             secret=True),
    Variable("SLACK_CHANNEL", "#cost-alerts", "default Slack channel"),
    Variable("SENTINEL_SLACK_API_URL", "https://slack.com/api/", "Slack Web API base URL"),
    Variable("SENTINEL_SLACK_ROUTES", "",
             "YAML file routing accounts / services to channels ('' = all to SLACK_CHANNEL)"),
    Variable("SENTINEL_DAGSTER_URL", "", "Dagster UI base URL, for links in messages"),
    Variable("SENTINEL_FAILURE_SENSOR_INTERVAL", "60",
             "seconds between the run-failure sensor's looks for failed runs"),
    Variable("SENTINEL_FEEDBACK_DAYS", "30",
             "days back the feedback sensor reads reactions and replies on alert messages"),
    Variable("SENTINEL_FEEDBACK_USERS", "",
             "comma-separated Slack user IDs allowed to give feedback ('' = any person)"),
    Variable("SENTINEL_SHARDS", "0",
             "most shards cost_baselines splits the series into, each a step of Dagster's "
             "executor (0 or 1 = one step, no sharding)"),
    Variable("SENTINEL_SHARD_SERIES", "0",
             "with SENTINEL_SHARDS: shard only above this many series, one shard per this "
             "many (0 = always SENTINEL_SHARDS shards)"),
    Variable("DAGSTER_HOME", "./.sentinel/dagster", "the Dagster instance folder (CLI)"),
)}


def default(name: str) -> str:
    return VARIABLES[name].default


def read(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The variable's value, or its default when unset or blank."""
    env = os.environ if environ is None else environ
    return (env.get(name) or "").strip() or VARIABLES[name].default


def is_set(name: str, environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool((env.get(name) or "").strip())


def start_date(environ: Mapping[str, str] | None = None) -> date:
    """SENTINEL_START_DATE, validated. Partitions are structure, not run config: Dagster needs
    them when it loads the code location, so this is read while definitions are built."""
    raw = read("SENTINEL_START_DATE", environ)
    try:
        if len(raw) != 10 or raw[4] != "-" or raw[7] != "-":  # 3.11 also takes 20250101
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError as exc:
        from sentinel_pipeline.errors import ConfigError

        raise ConfigError(
            f"SENTINEL_START_DATE={raw!r} is not a date: use the form YYYY-MM-DD, "
            f"e.g. {default('SENTINEL_START_DATE')}."
        ) from exc


def failure_sensor_interval(environ: Mapping[str, str] | None = None) -> int:
    """SENTINEL_FAILURE_SENSOR_INTERVAL, validated. Like the partitions, a sensor's interval is
    part of the definitions the daemon reads when the code location loads."""
    raw = read("SENTINEL_FAILURE_SENSOR_INTERVAL", environ)
    if not raw.isdigit() or int(raw) < 1:
        from sentinel_pipeline.errors import ConfigError

        raise ConfigError(
            f"SENTINEL_FAILURE_SENSOR_INTERVAL={raw!r} is not a whole number of seconds (at "
            f"least 1): e.g. {default('SENTINEL_FAILURE_SENSOR_INTERVAL')}."
        )
    return int(raw)


def shards(environ: Mapping[str, str] | None = None) -> int:
    """SENTINEL_SHARDS, validated: how many shard steps cost_baselines has. Like the
    partitions, it is the shape of the asset's graph, so it is read when the code location
    loads (the run-time threshold, SENTINEL_SHARD_SERIES, is resource config)."""
    raw = read("SENTINEL_SHARDS", environ)
    if not raw.isdigit() or int(raw) > MAX_SHARDS:
        from sentinel_pipeline.errors import ConfigError

        raise ConfigError(
            f"SENTINEL_SHARDS={raw!r} is not a number of shards: use a whole number from 0 "
            f"(no sharding) to {MAX_SHARDS}, e.g. 4 for four parallel steps."
        )
    return int(raw)


@dataclass(frozen=True)
class OwnerKey:
    """What names a series' owner (SENTINEL_OWNER_KEY): a resource tag or a cost category.

    ``kind`` is "tag" or "cost_category"; ``name`` the tag key or category name as the user
    wrote it (sources add the spellings their exports use, e.g. CUR 2.0's ``user_team``)."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def tag_names(self) -> tuple[str, ...]:
        """The keys a tag may have in an export, the user's own first: FOCUS ``Tags`` keep it
        as is (AWS FOCUS writes ``user:team``), CUR 2.0 ``resource_tags`` write ``user_team``."""
        if self.kind != "tag":
            return (self.name,)
        return tuple(dict.fromkeys((self.name, f"user_{self.name}", f"user:{self.name}")))


OWNER_KINDS: tuple[str, ...] = ("tag", "cost_category")


def parse_owner_key(raw: str) -> OwnerKey | None:
    """SENTINEL_OWNER_KEY as an OwnerKey, None when blank (series have no owner).

    'tag:team' and 'cost_category:Cost Center' are valid; anything else is a ConfigError
    naming the variable and the fix, raised before any data is read."""
    text = (raw or "").strip()
    if not text:
        return None
    kind, sep, name = text.partition(":")
    kind = kind.strip().lower().replace("-", "_")
    name = name.strip()
    if not sep or kind not in OWNER_KINDS or not name:
        from sentinel_pipeline.errors import ConfigError

        raise ConfigError(
            f"SENTINEL_OWNER_KEY={raw!r} is not an owner key: write tag:<key> (a resource tag, "
            "e.g. tag:team) or cost_category:<name> (e.g. cost_category:cost-center), or leave "
            "it unset for no owner."
        )
    return OwnerKey(kind, name)


# ---------------------------------------------------------------- sources
DEMO_SERIES = 30  # series the demo source makes
# Most alerted series a run drills into for root causes, largest $ impact first (each is one
# billed request on Cost Explorer).
MAX_DRILL_DOWNS = 100
# athena source: seconds a query may take (queued and running) before it is stopped.
ATHENA_TIMEOUT_SECONDS = 600.0

# ---------------------------------------------------------------- detection
METHODS: tuple[str, ...] = ("robust", "seed")
METHOD = "robust"
MIN_IMPACT = 20.0  # smallest $ change of one day worth an alert: below it nobody acts
MIN_PCT_CHANGE = 20.0  # smallest % change: huge series must not alert on rounding noise
# Scores are calibrated z (robust.py): a threshold s means about P(Z > s) false alarms per
# series-day and test. 3.75: 8.8e-5, i.e. ~0.3 per 100 series-months on a clean series; the
# in-repo benchmark's budget is 1 (it measured 0.36, and 0.54 at 3.5 with noisier traps).
SCORE_THRESHOLD = 3.75
LOOKBACK_DAYS = 63  # history of the robust baseline: a month and 8 weeks of weekdays
ALERT_ON_DROPS = False  # drops are always recorded (kind=drop); posted only when set
# Most shard steps cost_baselines may have: more processes than this cost more to start than
# they save on one day's work.
MAX_SHARDS = 64

# ---------------------------------------------------------------- Claude
CLAUDE_MAX_TOKENS = 8000  # output tokens per request (256-32000)
CLAUDE_TIMEOUT_SECONDS = 60.0  # per HTTP attempt (0-600 s)
CLAUDE_MAX_RETRIES = 2  # on 429 / 5xx / timeouts (0-5)
# Alerts explained by Claude per day, largest $ impact first; the rest get the fallback.
CLAUDE_MAX_ALERTS_PER_REQUEST = 40

# ---------------------------------------------------------------- Slack
# Alerts about days older than this are not posted, so backfilling a year of history does not
# flood the channel (they stay in annotated_alerts).
SLACK_MAX_AGE_DAYS = 7
SLACK_TIMEOUT_SECONDS = 30.0
SLACK_CHARTS = True  # attach a 30-day chart of the top alert
