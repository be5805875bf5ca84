"""Faults in the data path: absurd sums, damaged and empty partitions. Each fails or warns
with the file (or series and day) and the fix, and writes nothing it should not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from sentinel_pipeline.cli import failure_messages, open_instance
from sentinel_pipeline.defs.sensors import abandoned_cli_runs_sensor, fail_abandoned_cli_runs
from sentinel_pipeline.errors import SourceError
from sentinel_pipeline.sources.cur import read_cur
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests import cur_fakes
from sentinel_pipeline_tests.conftest import run_days
from sentinel_pipeline_tests.cur_fakes import Item

DAY = date(2025, 2, 10)
FOCUS_HEADER = ("ChargePeriodStart,ServiceName,SubAccountId,RegionId,BilledCost,"
                "BillingCurrency,ChargeCategory\n")


def _retries(result: dg.ExecuteInProcessResult) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_a_non_finite_sum_is_refused_naming_series_and_day(
    sentinel_env: Path, instance: dg.DagsterInstance, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two line items of 1e308 for one series and day sum to inf: the run fails before any
    table is written, naming the series, the day and the fix, and is not retried."""
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "costs.csv").write_text(
        FOCUS_HEADER
        + f"{DAY}T00:00:00Z,Amazon EC2,111,us-east-1,1e308,USD,Usage\n" * 2
        + f"{DAY}T00:00:00Z,Amazon S3,111,us-east-1,12.5,USD,Usage\n")
    monkeypatch.setenv("SENTINEL_SOURCE", "focus")
    monkeypatch.setenv("SENTINEL_SOURCE_PATH", str(exports))
    result = run_days(instance, DAY, DAY, raise_on_error=False)
    assert not result.success
    message = "\n".join(failure_messages(result))
    assert "service='Amazon EC2' account_id='111' region='us-east-1'" in message
    assert str(DAY) in message and str(exports / "costs.csv") in message
    assert "Nothing was written" in message
    assert not list(sentinel_env.rglob("*.parquet"))
    assert _retries(result) == []


def test_cur_line_items_summing_to_inf_name_the_file(tmp_path: Path) -> None:
    items = [Item(date(2025, 1, 5), 1e308), Item(date(2025, 1, 5), 1e308, hour=11),
             Item(date(2025, 1, 5), 3.0, service="AmazonS3")]
    key = cur_fakes.data_key("2025-01")
    (tmp_path / key).parent.mkdir(parents=True)
    (tmp_path / key).write_bytes(cur_fakes.parquet_bytes(items))
    with pytest.raises(SourceError) as info:
        read_cur(str(tmp_path / cur_fakes.EXPORT), date(2025, 1, 5), date(2025, 1, 5))
    message = str(info.value)
    assert "service='AmazonEC2'" in message and "on 2025-01-05" in message
    assert key.rsplit("/", 1)[-1] in message and "inf" in message


@pytest.mark.parametrize("table, damaged_day", [
    ("raw_daily_costs", date(2025, 2, 9)),
    ("cost_anomalies", date(2025, 2, 5)),
])
def test_a_damaged_partition_names_the_file_and_the_fix_without_retrying(
    sentinel_env: Path, instance: dg.DagsterInstance, table: str, damaged_day: date,
) -> None:
    """A truncated file fails the next day's run at once (no retries), the message (as the CLI
    prints it) naming the file and the rerun: raw_daily_costs of the day before, or
    cost_anomalies 5 days back, which cost_baselines reads (Sentinel's own verdicts, left out
    of the history) rather than learn from a history with that day's verdicts missing."""
    assert run_days(instance, damaged_day, date(2025, 2, 9)).success
    damaged = sentinel_env / table / f"date={damaged_day}" / "data.parquet"
    damaged.write_bytes(damaged.read_bytes()[:100])
    result = run_days(instance, DAY, DAY, raise_on_error=False)
    assert not result.success
    message = "\n".join(failure_messages(result))
    assert str(damaged) in message and "is damaged" in message
    assert f"sentinel backfill --start {damaged_day} --end {damaged_day}" in message
    assert _retries(result) == []
    assert run_days(instance, damaged_day, damaged_day).success  # the fix: rerun that day
    assert run_days(instance, DAY, DAY).success


def test_an_empty_day_inside_the_history_is_a_warning_not_a_quiet_day(
    sentinel_env: Path, instance: dg.DagsterInstance,
) -> None:
    first, gap = date(2025, 2, 1), date(2025, 2, 5)
    assert run_days(instance, first, date(2025, 2, 8)).success
    store = TableStore(str(sentinel_env))
    store.write_partition("raw_daily_costs", gap, store.read_partition(
        "raw_daily_costs", gap).iloc[0:0])  # a valid file with no rows
    next_day = date(2025, 2, 9)
    result = run_days(instance, next_day, next_day)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["history_complete"].passed
    assert checks["history_complete"].metadata["days"].value == str(gap)
    assert checks["history_complete"].severity == dg.AssetCheckSeverity.WARN
    logs = instance.all_logs(result.run_id)
    assert any("1 empty day(s) inside the history read (2025-02-05)" in (r.user_message or "")
               for r in logs)


def _cli(home: Path, data: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DAGSTER_HOME": str(home), "SENTINEL_DATA_DIR": str(data),
           "SENTINEL_SOURCE": "demo"}
    return subprocess.Popen([sys.executable, "-m", "sentinel_pipeline.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_killed_cli_run_is_marked_failed_by_the_next_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kill -9 of `sentinel backfill` mid-run leaves its run STARTED; the next command (or the
    daemon's sensor) marks it failed, naming the gone process, and only that run."""
    home, data = tmp_path / "home", tmp_path / "data"
    # 90 days: Dagster logs a planned event per asset and day before the run is STARTED (a year
    # took ~15 s to get there), and the run still lasts seconds after, time enough to kill it.
    first = _cli(home, data, "backfill", "--start", "2025-01-01", "--end", "2025-03-31")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    deadline = time.monotonic() + 120
    started: list[dg.DagsterRun] = []
    while not started and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
        if (home / "history" / "runs.db").exists():
            # Through the CLI's lock: the backfill may still be creating the schema.
            with open_instance() as instance:
                started = list(instance.get_runs(dg.RunsFilter(
                    statuses=[dg.DagsterRunStatus.STARTED])))
    assert started, "the backfill never started"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    run_id = started[0].run_id
    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
        # The daemon's sensor does it too; here the next CLI command does.
        evaluation = abandoned_cli_runs_sensor(dg.build_sensor_context(instance=instance))
        assert "1 abandoned CLI run(s) marked failed" in str(evaluation.skip_message)
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert fail_abandoned_cli_runs(instance) == []  # judged once
    failure = [r for r in instance.all_logs(run_id)
               if r.dagster_event and r.dagster_event.event_type_value == "PIPELINE_FAILURE"]
    assert f"pid {first.pid}" in failure[-1].dagster_event.message


def test_two_first_commands_on_a_fresh_dagster_home_both_succeed(tmp_path: Path) -> None:
    """Both create the instance at once: the lock makes one wait for the other's schema."""
    home = tmp_path / "home"
    procs = [_cli(home, tmp_path / f"data{i}", "backfill", "--start", "2025-01-02",
                  "--end", "2025-01-02") for i in range(2)]
    outputs = [p.communicate(timeout=240)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.get_runs()) == 2
