"""Failed runs are reported once each, whoever launched them: the `sentinel` command, the UI, or
the daily schedule.

Why the CLI's failures went unreported: a run-failure sensor watches the runs of its own code
location unless told otherwise, and a run's code location is its remote origin, which the
`sentinel` command's runs (execute_in_process on the instance) do not have. The sensor now
watches all runs and keeps Sentinel's (``is_sentinel_run``); a tag on the run keeps a failure
from being posted twice.

The last test runs the real `dagster dev` (webserver, daemon and code server processes) on a tmp
instance, as a user's `make dev` would, with the sensor's interval lowered through
SENTINEL_FAILURE_SENSOR_INTERVAL. A run-failure sensor starts from "now" at its first tick, so
the test waits for that tick, as a user's failures before the daemon first ran are not seen.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import (  # no public API for schedule state
    InstigatorState,
    InstigatorType,
    ScheduleInstigatorData,
)

from sentinel_pipeline import settings
from sentinel_pipeline.definitions import defs
from sentinel_pipeline.defs.resources import AlertSinkResource, StorageResource
from sentinel_pipeline.defs.sensors import FAILURE_ALERT_TAG, is_sentinel_run
from sentinel_pipeline.errors import ConfigError
from sentinel_pipeline_tests.conftest import run_days
from sentinel_pipeline_tests.dagster_processes import (
    LOCATION,
    REPOSITORY,
    dagster_dev,
    wait_for,
    write_instance_yaml,
)

SENSOR = "run_failure_alert_sensor"
SCHEDULE = "sentinel_daily_schedule"
DAY = date(2025, 3, 1)


# ------------------------------------------------------------------------------ helpers
def _failure_posts(data_dir: Path) -> dict[str, list[Path]]:
    """Outbox files of run-failure messages, by the run id in their metadata."""
    posts: dict[str, list[Path]] = {}
    for path in sorted((data_dir / "outbox").glob("run-failure-*.json")):
        key = json.loads(path.read_text())["metadata"]["event_payload"]["key"]
        assert key.startswith("run-failure|"), key
        posts.setdefault(key.split("|", 1)[1], []).append(path)
    return posts


def _text(path: Path) -> str:
    message = json.loads(path.read_text())
    return "\n".join([message["text"]] + [json.dumps(b) for b in message["blocks"]])


@dg.op
def _boom() -> None:
    raise RuntimeError("another team's op failed")


@dg.job(name="other_team_job")
def _other_team_job() -> None:
    _boom()


# ------------------------------------------------------------------------------ unit tests
def test_the_sensor_interval_is_a_setting() -> None:
    assert settings.failure_sensor_interval({}) == 60
    assert settings.failure_sensor_interval({"SENTINEL_FAILURE_SENSOR_INTERVAL": "5"}) == 5
    for bad in ("0", "-1", "1.5", "soon"):
        with pytest.raises(ConfigError, match="SENTINEL_FAILURE_SENSOR_INTERVAL"):
            settings.failure_sensor_interval({"SENTINEL_FAILURE_SENSOR_INTERVAL": bad})
    sensor = defs.resolve_sensor_def(SENSOR)
    assert sensor.minimum_interval_seconds == settings.failure_sensor_interval()


def test_which_failed_runs_are_sentinels() -> None:
    repo = defs.get_repository_def()

    def run(job: str, assets: list[str] | None = None) -> dg.DagsterRun:
        selection = frozenset(dg.AssetKey(a) for a in assets) if assets is not None else None
        return dg.DagsterRun(job_name=job, run_id=str(uuid.uuid4()), asset_selection=selection)

    assert is_sentinel_run(run("sentinel_daily_job"), repo)  # CLI, schedule, job launch
    assert is_sentinel_run(run("sentinel_weekly_digest_job"), repo)
    assert is_sentinel_run(run("__ASSET_JOB", ["raw_daily_costs", "cost_baselines"]), repo)
    # Another code location on the same instance: its jobs, its assets.
    assert not is_sentinel_run(run("other_team_job"), repo)
    assert not is_sentinel_run(run("__ASSET_JOB", ["their_table"]), repo)
    assert not is_sentinel_run(run("__ASSET_JOB", ["raw_daily_costs", "their_table"]), repo)


# ------------------------------------------------------------------------ the sensor in-process
def test_a_cli_run_failure_is_posted_once_and_other_teams_runs_are_left_alone(
    sentinel_env: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed in-process run of the daily job (what `sentinel backfill` makes) is posted once,
    also when the sensor walks the same events again (a cursor reset in the UI); a failed run
    of a job that is not Sentinel's, on the same instance, is not posted."""
    sensor = defs.resolve_sensor_def(SENSOR)
    resources = {"storage": StorageResource(data_dir=str(sentinel_env)),
                 "alert_sink": AlertSinkResource(slack_bot_token="")}

    def drain(cursor: str | None) -> tuple[str | None, list[str]]:
        """Tick until the cursor stops moving (a skipped run ends its tick)."""
        skipped = []
        for _ in range(10):
            context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                              resources=resources,
                                              repository_def=defs.get_repository_def())
            result = sensor.evaluate_tick(context)
            skipped += [result.skip_message] if result.skip_message else []
            if result.cursor == cursor:
                return cursor, skipped
            cursor = result.cursor
        raise AssertionError("the sensor's cursor kept moving")

    start, _ = drain(None)  # a run-status sensor starts from "now"
    monkeypatch.setenv("SENTINEL_SOURCE", "focus")
    monkeypatch.setenv("SENTINEL_SOURCE_PATH", str(sentinel_env / "no-such-exports"))
    other = _other_team_job.execute_in_process(instance=instance, raise_on_error=False)
    failed = run_days(instance, DAY, DAY, raise_on_error=False)
    assert not other.success and not failed.success

    _, skipped = drain(start)
    posts = _failure_posts(sentinel_env)
    assert list(posts) == [failed.run_id] and len(posts[failed.run_id]) == 1
    assert any("is not a Sentinel run" in s and other.run_id in s for s in skipped)
    text = _text(posts[failed.run_id][0])
    assert "Sentinel run failed: sentinel_daily_job (2025-03-01)" in text
    assert "Step raw_daily_costs failed:" in text and "no-such-exports" in text
    tag = instance.get_run_by_id(failed.run_id).tags[FAILURE_ALERT_TAG]  # type: ignore[union-attr]
    assert tag == f"outbox #cost-alerts {posts[failed.run_id][0]}"

    _, skipped = drain(start)  # the same failures again
    assert _failure_posts(sentinel_env) == posts
    assert any("already reported" in s and failed.run_id in s for s in skipped)


# --------------------------------------------------------------------- the real daemon
def _state(instance: dg.DagsterInstance, kind: InstigatorType, name: str) -> Any:
    return next((s for s in instance.all_instigator_state(instigator_type=kind)
                 if s.instigator_name == name), None)


def _sensor_ticks(instance: dg.DagsterInstance) -> int:
    state = _state(instance, InstigatorType.SENSOR, SENSOR)
    return len(instance.get_ticks(state.instigator_origin_id, state.selector_id))


def _last_schedule_time(now: datetime) -> datetime:
    """The latest 09:00 UTC at or before now: the daily schedule's last tick."""
    tick = now.replace(hour=9, minute=0, second=0, microsecond=0)
    return tick if tick <= now else tick - timedelta(days=1)


def _launch(dev: Any, job: str, partition: str, assets: list[str] | None = None) -> str:
    """Launch a run as the UI does (the launchRun mutation of the launchpad, or of an asset's
    Materialize with ``assets``); its run id."""
    selector: dict[str, Any] = {"repositoryLocationName": LOCATION,
                                "repositoryName": REPOSITORY, "jobName": job}
    if assets:
        selector["assetSelection"] = [{"path": [a]} for a in assets]
    data = dev.graphql(
        """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
             __typename ... on LaunchRunSuccess { run { runId } }
             ... on PythonError { message } ... on RunConfigValidationInvalid { errors { message } }
           } }""",
        {"params": {"selector": selector, "runConfigData": {},
                    "executionMetadata": {"tags": [{"key": "dagster/partition",
                                                    "value": partition}]}}})
    launched = data["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return str(launched["run"]["runId"])


def test_failed_runs_from_the_cli_the_ui_and_the_schedule_are_each_reported_once_by_the_daemon(
    tmp_path: Path,
) -> None:
    home, data = tmp_path / "dagster", tmp_path / "data"
    write_instance_yaml(home)
    log = tmp_path / "dagster-dev.log"
    env = {**os.environ, "DAGSTER_HOME": str(home), "SENTINEL_DATA_DIR": str(data),
           "SENTINEL_SOURCE": "focus", "SENTINEL_SOURCE_PATH": str(tmp_path / "no-such-exports"),
           "SLACK_BOT_TOKEN": "", "ANTHROPIC_API_KEY": "", "SENTINEL_DAGSTER_URL": "",
           "SENTINEL_FAILURE_SENSOR_INTERVAL": "1"}
    now = datetime.now(UTC)
    yesterday = now.date() - timedelta(days=1)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # 1. The daemon's first tick of the sensor sets its cursor ("from now on"); the
        #    scheduler records the schedule's state. Then the daemon stops.
        with dagster_dev(home, env, log):
            wait_for("the run-failure sensor's first tick", lambda: getattr(
                getattr(_state(instance, InstigatorType.SENSOR, SENSOR), "instigator_data",
                        None), "cursor", None), 240, log)
            wait_for("the daily schedule's state",
                     lambda: _state(instance, InstigatorType.SCHEDULE, SCHEDULE), 120, log)
        # 2. While it is down, wind the schedule back to just before its last 09:00 UTC tick,
        #    so the scheduler runs that tick when it starts (as after an outage).
        tick_time = _last_schedule_time(now)
        state: InstigatorState = _state(instance, InstigatorType.SCHEDULE, SCHEDULE)
        before = (tick_time - timedelta(minutes=1)).timestamp()
        instance.update_instigator_state(state.with_data(ScheduleInstigatorData(
            state.instigator_data.cron_schedule, start_timestamp=before,
            last_iteration_timestamp=before)))
        scheduled_day = (tick_time.date() - timedelta(days=1)).isoformat()

        def fail_from_the_cli(day: date) -> str:
            """`sentinel backfill` of a day, which fails; its run id."""
            done = subprocess.run(
                [str(Path(sys.executable).with_name("sentinel")), "backfill",
                 "--start", day.isoformat(), "--end", day.isoformat()],
                env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 1, done.stdout + done.stderr
            found = re.search(r"[Rr]un ([0-9a-f-]{36}) failed", done.stderr)
            assert found, done.stderr
            return found.group(1)

        # A CLI run failing while the daemon is down: seen when it is back (the cursor is
        # kept in the instance).
        while_down = fail_from_the_cli(yesterday - timedelta(days=5))

        # 3. Daemon and webserver again; runs fail from the UI, the CLI and the schedule.
        with dagster_dev(home, env, log) as dev:
            launched = _launch(dev, "sentinel_daily_job", (yesterday - timedelta(2)).isoformat())
            materialized = _launch(dev, "__ASSET_JOB", (yesterday - timedelta(3)).isoformat(),
                                   assets=["raw_daily_costs"])
            from_cli = fail_from_the_cli(yesterday - timedelta(days=4))
            scheduled = wait_for("the scheduled run", lambda: next(iter(instance.get_run_ids(
                dg.RunsFilter(tags={"dagster/schedule_name": SCHEDULE}))), None), 240, log)

            runs = {"cli": from_cli, "cli, daemon down": while_down, "ui launch": launched,
                    "ui materialize": materialized, "schedule": scheduled}

            def unreported() -> list[str]:
                got = {name: instance.get_run_by_id(run_id) for name, run_id in runs.items()}
                return [name for name, r in got.items()
                        if r is None or r.status != dg.DagsterRunStatus.FAILURE
                        or FAILURE_ALERT_TAG not in r.tags]

            try:
                wait_for("every failed run reported", lambda: not unreported(), 300, log)
            except AssertionError as exc:
                raise AssertionError(f"not reported: {unreported()}") from exc
            ticks = _sensor_ticks(instance)
            wait_for("two more ticks of the sensor",
                     lambda: _sensor_ticks(instance) >= ticks + 2, 120, log)

    posts = _failure_posts(data)
    for name, run_id in runs.items():
        assert len(posts.get(run_id, [])) == 1, (name, run_id, posts)
    # Nothing posted twice, and every failed Sentinel run posted (the freshness sensor's check
    # runs, if any failed, too).
    with dg.DagsterInstance.from_config(str(home)) as instance:
        failed = instance.get_run_ids(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        assert set(posts) == set(failed) and all(len(p) == 1 for p in posts.values())
        schedule_run = instance.get_run_by_id(scheduled)
        assert schedule_run is not None and schedule_run.tags["dagster/partition"] == scheduled_day
    assert f"sentinel_daily_job ({scheduled_day})" in _text(posts[scheduled][0])
    cli_text = _text(posts[from_cli][0])
    assert "Step raw_daily_costs failed:" in cli_text and "no-such-exports" in cli_text
    assert "__ASSET_JOB" in _text(posts[materialized][0])
