"""`sentinel doctor`: what is configured and whether it works, without printing any secret."""

from __future__ import annotations

import os
from pathlib import Path

from sentinel_pipeline.errors import SentinelError
from sentinel_pipeline.settings import setting

Check = tuple[bool, str]


def _is_set(name: str) -> str:
    return "set" if os.environ.get(name) else "not set"


def run_checks() -> list[Check]:
    """Each check as (passed, one line saying what was found and, if broken, the fix)."""
    checks: list[Check] = []
    try:
        from sentinel_pipeline.partitions import partition_start_date

        checks.append((True, f"SENTINEL_START_DATE: first partition {partition_start_date()}"))
    except ValueError as exc:
        checks.append((False, str(exc)))

    source = setting("SENTINEL_SOURCE")
    from sentinel_pipeline.resources import SOURCES

    if source not in SOURCES:
        checks.append((False, f"SENTINEL_SOURCE={source!r} is unknown: use one of "
                              f"{', '.join(SOURCES)}."))
    elif source == "focus":
        path = setting("SENTINEL_SOURCE_PATH")
        if not path:
            checks.append((False, "SENTINEL_SOURCE=focus needs SENTINEL_SOURCE_PATH (folder or "
                                  "s3:// prefix of FOCUS exports)."))
        elif not path.startswith("s3://") and not Path(path).is_dir():
            checks.append((False, f"SENTINEL_SOURCE_PATH={path} is not a folder: fix the path."))
        else:
            checks.append((True, f"source: focus files under {path}"))
    elif source == "cost_explorer":
        from datetime import UTC, datetime

        from sentinel_pipeline.sources.cost_explorer import check_access

        checks.append(check_access(setting("SENTINEL_CE_METRIC"),
                                   setting("SENTINEL_CE_RECORD_TYPES"), datetime.now(UTC).date()))
    elif source == "cur":
        from sentinel_pipeline.sources.cur import check_export

        checks.append(check_export(setting("SENTINEL_SOURCE_PATH"), setting("SENTINEL_CUR_COST"),
                                   setting("SENTINEL_CUR_LINE_ITEM_TYPES")))
    else:
        checks.append((True, "source: demo (synthetic costs, no cloud account needed)"))

    data_dir = setting("SENTINEL_DATA_DIR")
    try:
        from sentinel_pipeline.storage import TableStore

        TableStore(data_dir).check_writable()
        checks.append((True, f"data dir {data_dir} is writable"))
    except SentinelError as exc:
        checks.append((False, str(exc)))

    home = os.environ.get("DAGSTER_HOME", "")
    checks.append((bool(home) and Path(home).is_dir(), f"DAGSTER_HOME={home or '(not set)'}"))

    try:
        from sentinel_pipeline.definitions import defs

        names = sorted(k.to_user_string() for k in defs.resolve_all_asset_keys())
        checks.append((True, f"definitions load: {', '.join(names)}"))
    except Exception as exc:  # any import/definition error is what doctor must report
        checks.append((False, f"definitions fail to load: {type(exc).__name__}: {exc}"))

    token = os.environ.get("SLACK_BOT_TOKEN")
    channel = setting("SLACK_CHANNEL")
    checks.append((True, f"Slack: SLACK_BOT_TOKEN {_is_set('SLACK_BOT_TOKEN')}, channel {channel}"
                         + ("" if token else " (dry run: alerts go to the outbox folder)")))
    routes = setting("SENTINEL_SLACK_ROUTES")
    if routes:
        from sentinel_pipeline.delivery.routing import load_router

        try:
            router = load_router(routes, channel)
            checks.append((True, f"Slack routes: {len(router.routes)} route(s) in {routes}"))
        except SentinelError as exc:
            checks.append((False, str(exc)))
    checks.append((True, f"Claude: ANTHROPIC_API_KEY {_is_set('ANTHROPIC_API_KEY')}, model "
                         f"{setting('SENTINEL_CLAUDE_MODEL')}"
                         + ("" if os.environ.get("ANTHROPIC_API_KEY")
                            else " (explanations are the deterministic fallback)")))
    return checks
