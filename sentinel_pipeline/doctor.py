"""`sentinel doctor`: what is configured and whether it works, without printing any secret.

It reads the settings through the same resources a run uses (``resources_from_environment``),
so what it reports is what the next run will see.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from sentinel_pipeline import settings
from sentinel_pipeline.delivery.sinks import DeliveryError, SlackSink
from sentinel_pipeline.errors import SentinelError
from sentinel_pipeline.sources.base import Check


def run_checks() -> list[Check]:
    """Each check as (passed, one line saying what was found and, if broken, the fix)."""
    checks: list[Check] = []
    try:
        checks.append((True, f"SENTINEL_START_DATE: first partition {settings.start_date()}"))
    except SentinelError as exc:
        return [(False, str(exc))]  # nothing else loads without the partitions

    from sentinel_pipeline.defs.resources import resolved, resources_from_environment

    resources = resources_from_environment()
    try:
        source_resource = resolved(resources["source"])
        owner = settings.parse_owner_key(source_resource.owner_key)
        if owner is not None:
            checks.append((True, f"SENTINEL_OWNER_KEY: series are keyed by {owner} too; "
                                 "untagged spend has no owner and goes to SLACK_CHANNEL"))
        source = source_resource.cost_source()
        checks.append(source.check(datetime.now(UTC).date()))
    except SentinelError as exc:
        checks.append((False, str(exc)))

    data_dir = resolved(resources["storage"]).data_dir
    try:
        from sentinel_pipeline.storage import TableStore

        store = TableStore(data_dir)
        store.check_writable()
        checks.append((True, f"data dir {data_dir} is writable"))
        from sentinel_pipeline.delivery.ledger import DeliveryLedger

        ledger = DeliveryLedger(store)  # reads and checks it whole: damage is a LedgerError
        checks.append((True, f"delivery ledger: {len(ledger.alerts)} alert(s) delivered, "
                             f"{len(ledger.data['pending'])} post(s) pending"))
    except SentinelError as exc:
        checks.append((False, str(exc)))

    checks.append(_dagster_home_check())
    events = _event_settings_check()
    if events is not None:
        checks.append(events)

    try:
        from sentinel_pipeline.definitions import defs

        names = sorted(k.to_user_string() for k in defs.resolve_all_asset_keys())
        checks.append((True, f"definitions load: {', '.join(names)}"))
    except Exception as exc:  # any import/definition error is what doctor must report
        checks.append((False, f"definitions fail to load: {type(exc).__name__}: {exc}"))

    sink = resolved(resources["alert_sink"])
    token_set = bool(sink.slack_bot_token)
    checks.append((True, f"Slack: SLACK_BOT_TOKEN {'set' if token_set else 'not set'}, channel "
                         f"{sink.channel}"
                         + ("" if token_set else " (dry run: alerts go to the outbox folder)")))
    if token_set:
        checks.append(_slack_scopes_check(sink.feedback_reader()))
    if sink.routes_file:
        try:
            router = sink.router()
            checks.append((True, f"Slack routes: {len(router.routes)} route(s) in "
                                 f"{sink.routes_file}"))
        except SentinelError as exc:
            checks.append((False, str(exc)))
    annotator = resolved(resources["annotator"])
    key_set = bool(annotator.api_key)
    checks.append((True, f"Claude: ANTHROPIC_API_KEY {'set' if key_set else 'not set'}, model "
                         f"{annotator.model}"
                         + ("" if key_set else " (explanations are the deterministic fallback)")))
    return checks


def _slack_scopes_check(slack: SlackSink | None) -> Check:
    """Whether the bot token has every scope Sentinel uses (one auth.test call)."""
    if slack is None:
        return True, "Slack: dry run, no scopes needed"
    try:
        missing = slack.missing_scopes()
    except DeliveryError as exc:
        return False, f"Slack: {exc}"
    if missing is None:
        return True, ("Slack: token accepted; its scopes cannot be read (no x-oauth-scopes "
                      "header came back)")
    if missing:
        return False, (f"Slack: the bot token lacks the scope(s) {', '.join(missing)}: add them "
                       "to the Slack app (OAuth & Permissions) and reinstall it (README, Slack "
                       "app)")
    return True, "Slack: token accepted, with every scope Sentinel uses"


def _dagster_home_check() -> Check:
    """DAGSTER_HOME as the next `sentinel demo`/`backfill` will use it. Doctor creates nothing:
    a folder not there yet is fine when it can be created."""
    home = Path(settings.read("DAGSTER_HOME")).resolve()
    if home.is_dir():
        return True, f"DAGSTER_HOME={home}"
    fix = "set DAGSTER_HOME to a writable folder"
    if home.exists():
        return False, f"DAGSTER_HOME={home} is not a folder: {fix}."
    parent = next(p for p in home.parents if p.exists())
    if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
        return True, (f"DAGSTER_HOME={home} (not created yet: the first `sentinel demo` or "
                      "`sentinel backfill` creates it)")
    return False, f"DAGSTER_HOME={home} cannot be created under {parent}: {fix}."


# Dagster's own settings that make a big backfill's event log cheap on PostgreSQL (README,
# "Dagster's event log in big backfills"): set for the webserver, daemon and run workers.
EVENT_SETTINGS = {"DAGSTER_EVENT_BATCH_SIZE": "1000",
                  "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}


def _event_settings_check() -> Check | None:
    """On a PostgreSQL instance (deploy/dagster.yaml), whether EVENT_SETTINGS are in this
    environment; None for any other instance (SQLite has no batch write to gain from)."""
    import yaml

    config = Path(settings.read("DAGSTER_HOME")) / "dagster.yaml"
    try:
        storage = (yaml.safe_load(config.read_text()) or {}).get("storage") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    if not isinstance(storage, dict) or "postgres" not in storage:
        return None
    unset = [name for name in EVENT_SETTINGS
             if os.environ.get(name, "").strip().lower() in ("", "0", "false")]
    if not unset:
        return True, ("Dagster events: written in batches, planned days announced per asset "
                      "(a year's backfill spends ~7 % of its time storing them)")
    wanted = " and ".join(f"{name}={EVENT_SETTINGS[name]}" for name in unset)
    return True, (f"Dagster events: {', '.join(unset)} not set, so a year's backfill spends "
                  f"~37 % of its time storing events instead of ~7 %: set {wanted} for the "
                  "webserver, the daemon and the run workers (README, Operations)")
