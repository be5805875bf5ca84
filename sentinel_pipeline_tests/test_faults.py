"""Faults in the data path: absurd sums, damaged and empty partitions. Each fails or warns
with the file (or series and day) and the fix, and writes nothing it should not."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from sentinel_pipeline.cli import failure_messages
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.conftest import run_days

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
    assert "Amazon EC2 / 111 / us-east-1" in message and str(DAY) in message
    assert "Nothing was written" in message
    assert not list(sentinel_env.rglob("*.parquet"))
    assert _retries(result) == []


def test_a_damaged_partition_names_the_file_and_the_fix_without_retrying(
    sentinel_env: Path, instance: dg.DagsterInstance,
) -> None:
    """A truncated raw_daily_costs file of the day before fails the next day's run at once
    (no retries), the message (as the CLI prints it) naming the file and the rerun."""
    before = date(2025, 2, 9)
    assert run_days(instance, before, before).success
    damaged = sentinel_env / "raw_daily_costs" / f"date={before}" / "data.parquet"
    damaged.write_bytes(damaged.read_bytes()[:100])
    result = run_days(instance, DAY, DAY, raise_on_error=False)
    assert not result.success
    message = "\n".join(failure_messages(result))
    assert str(damaged) in message and "is damaged" in message
    assert f"sentinel backfill --start {before} --end {before}" in message
    assert _retries(result) == []
    assert run_days(instance, before, before).success  # the fix: rerun that day
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
