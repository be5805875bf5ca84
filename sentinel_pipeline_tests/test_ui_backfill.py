"""Backfills as the UI launches them: every asset gets exactly the selected days, and a day is
never computed from inputs that were never materialised (it fails naming the days and the fix).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg

from sentinel_pipeline.cli import failure_messages
from sentinel_pipeline_tests.conftest import Backfill, run_days


def test_anomalies_without_that_days_baselines_fail_naming_the_days(
    demo_backfill: Backfill, backfill_copy: Path, instance: dg.DagsterInstance
) -> None:
    """A UI backfill that selects cost_anomalies without cost_baselines, on days whose
    baselines were never computed, fails rather than writing empty (quiet) days."""
    day = date(2025, 4, 2)  # after the demo backfill: raw written below, baselines never
    assert run_days(instance, date(2025, 4, 1), day, assets=["raw_daily_costs"]).success
    result = run_days(instance, date(2025, 4, 1), day, raise_on_error=False,
                      assets=["cost_anomalies"])
    assert not result.success
    message = _failure(result)
    assert "cost_baselines for 2025-04-01..2025-04-02, which was never materialised" in message
    assert "sentinel backfill --start 2025-04-01 --end 2025-04-02" in message
    assert not (backfill_copy / "cost_anomalies" / "date=2025-04-01").exists()


def test_baselines_over_a_never_loaded_raw_day_fail_naming_it(
    demo_backfill: Backfill, backfill_copy: Path, instance: dg.DagsterInstance
) -> None:
    """A raw day never materialised inside the history would count as a day without spend."""
    day = date(2025, 4, 3)  # raw of 04-01 and 04-02 never loaded; 03-31 and before are
    result = run_days(instance, day, day, raise_on_error=False)
    assert not result.success
    message = _failure(result)
    assert "never materialised for 2025-04-01..2025-04-02" in message
    assert "sentinel backfill --start 2025-04-01 --end 2025-04-02" in message
    assert not (backfill_copy / "cost_baselines" / f"date={day}").exists()


def _failure(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(failure_messages(result))
