"""The environment variables Sentinel reads, with their documented defaults, in one place."""

from __future__ import annotations

import os

DEFAULTS: dict[str, str] = {
    "SENTINEL_SOURCE": "demo",
    "SENTINEL_SOURCE_PATH": "",
    "SENTINEL_CUR_COST": "unblended",
    "SENTINEL_CUR_LINE_ITEM_TYPES": "Usage,DiscountedUsage,SavingsPlanCoveredUsage",
    "SENTINEL_DATA_DIR": "./.sentinel/data",
    "SENTINEL_START_DATE": "2025-01-01",
    "SENTINEL_CLAUDE_MODEL": "claude-haiku-4-5",
    "ANTHROPIC_API_KEY": "",
    "SLACK_BOT_TOKEN": "",
    "SLACK_CHANNEL": "#cost-alerts",
    "SENTINEL_SLACK_API_URL": "https://slack.com/api/",
    "SENTINEL_DAGSTER_URL": "",
    "SENTINEL_SLACK_ROUTES": "",
    "SENTINEL_CE_METRIC": "UnblendedCost",
    "SENTINEL_CE_RECORD_TYPES": "Usage",
    "SENTINEL_RESTATE_DAYS": "14",
}


def apply_defaults() -> None:
    """Fill unset variables with their defaults.

    Resources are configured with ``dg.EnvVar`` so values are read when a run starts (and the
    UI shows which variable feeds each field); EnvVar has no default of its own, so the defaults
    are put in the environment once, when the definitions load.
    """
    for name, value in DEFAULTS.items():
        if not os.environ.get(name):
            os.environ[name] = value


def setting(name: str) -> str:
    """A variable's value, or its default (for code outside Dagster: the CLI and doctor)."""
    return os.environ.get(name) or DEFAULTS[name]
