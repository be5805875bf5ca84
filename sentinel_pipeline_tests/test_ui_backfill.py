"""Backfills as the UI launches them: every asset gets exactly the selected days, a day is never
computed from inputs that were never materialised (it fails naming the days and the fix), and
each day of a range run shows its own figures.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from sentinel_pipeline.cli import failure_messages
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.conftest import Backfill, run_days

# Inside the shared demo backfill (2025-01-01..03-31): 1 alert on 03-17, none on 03-18, 2 on 03-19.
DAYS = [date(2025, 3, 17), date(2025, 3, 18), date(2025, 3, 19)]
ALERTS_PER_DAY = {date(2025, 3, 17): 1, date(2025, 3, 18): 0, date(2025, 3, 19): 2}


def _by_day(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, dict[str, Any]]:
    return {str(m.partition): {k: v.value for k, v in m.metadata.items()}
            for m in result.asset_materializations_for_node(asset)}


def test_a_range_run_records_each_days_own_counts_and_totals(
    demo_backfill: Backfill, backfill_copy: Path, instance: dg.DagsterInstance
) -> None:
    result = run_days(instance, DAYS[0], DAYS[-1])
    store = TableStore(str(backfill_copy))
    alerts = _by_day(result, "annotated_alerts")
    assert {day: meta["alerts"] for day, meta in alerts.items()} == {
        str(d): n for d, n in ALERTS_PER_DAY.items()}
    for day in DAYS:
        rows = store.read_partition("annotated_alerts", day)
        assert alerts[str(day)]["dagster/row_count"] == len(rows)
        assert alerts[str(day)]["total_impact"] == round(float(rows["impact"].clip(lower=0).sum()),
                                                         2)
    anomalies = _by_day(result, "cost_anomalies")
    raw = _by_day(result, "raw_daily_costs")
    baselines = _by_day(result, "cost_baselines")
    for day in DAYS:
        assert anomalies[str(day)]["dagster/row_count"] == len(
            store.read_partition("cost_anomalies", day))
        assert raw[str(day)]["total_cost"] == round(float(
            store.read_partition("raw_daily_costs", day)["cost"].sum()), 2)
        first = max(day - timedelta(days=90), date(2025, 1, 1))  # the first partition
        assert baselines[str(day)]["history_read"] == f"{first}..{day - timedelta(days=1)}"
    # Not the range's figures copied onto each day: the days differ.
    assert len({meta["total_cost"] for meta in raw.values()}) == len(DAYS)
    # Money is rounded to cents.
    assert all(round(m["total_cost"], 2) == m["total_cost"] for m in raw.values())


def test_the_run_queue_tags_every_run_that_writes_a_sentinel_table() -> None:
    """Runs of the asset pages (dagster's asset job) get the tag the queue limits on; runs that
    have it, or write nothing of Sentinel's, are left alone."""
    from sentinel_pipeline.defs.checks import RAW_FRESHNESS_CHECK
    from sentinel_pipeline.defs.run_queue import pipeline_tags

    tag = {"sentinel/pipeline": "daily"}
    one_asset = frozenset({dg.AssetKey("cost_baselines")})
    assert pipeline_tags(dg.DagsterRun("__ASSET_JOB", asset_selection=one_asset)) == tag
    assert pipeline_tags(dg.DagsterRun("__ASSET_JOB")) == tag  # every asset
    assert pipeline_tags(dg.DagsterRun("__ASSET_JOB", asset_selection=frozenset(
        {dg.AssetKey("elsewhere")}))) == {}
    # the freshness sensor's run evaluates a check and writes nothing
    assert pipeline_tags(dg.DagsterRun("__ASSET_JOB", asset_check_selection=frozenset(
        {RAW_FRESHNESS_CHECK}))) == {}
    assert pipeline_tags(dg.DagsterRun("sentinel_daily_job", tags=tag)) == {}
    assert pipeline_tags(dg.DagsterRun("sentinel_weekly_digest_job")) == {}


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
