"""Freshness of raw_daily_costs on a real instance: yesterday's partition by 10:00 UTC.

The check reads "now" from Dagster's clock and has no evaluation-time argument, so the tests set
the clock with dagster's own test helper (`dagster._core.test_utils.freeze_time`, private API:
it is what dagster's test-suite uses for exactly this).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
from dagster._core.test_utils import freeze_time

from sentinel_pipeline.definitions import defs
from sentinel_pipeline.defs.checks import RAW_FRESHNESS_CHECK, raw_freshness_checks
from sentinel_pipeline.defs.partitions import daily_partitions
from sentinel_pipeline.defs.sensors import raw_freshness_sensor
from sentinel_pipeline_tests.conftest import run_days

AFTER_DEADLINE = datetime(2025, 1, 21, 10, 30, tzinfo=UTC)  # 2025-01-20 is due
BEFORE_DEADLINE = datetime(2025, 1, 21, 9, 30, tzinfo=UTC)  # 2025-01-19 is still the one due


def _evaluate(instance: dg.DagsterInstance, now: datetime) -> dg.AssetCheckEvaluation:
    """Run the freshness check alone, as the sensor's run does, at the given time."""
    raw = dg.AssetSpec("raw_daily_costs", partitions_def=daily_partitions)
    with freeze_time(now):
        result = dg.materialize([raw, *raw_freshness_checks], instance=instance,
                                selection=dg.AssetSelection.checks(RAW_FRESHNESS_CHECK))
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_freshness_check_is_wired_and_left_out_of_the_daily_job() -> None:
    graph = defs.resolve_asset_graph()
    assert RAW_FRESHNESS_CHECK in graph.asset_check_keys
    job_checks = defs.resolve_job_def("sentinel_daily_job").asset_layer.asset_graph.asset_check_keys
    assert RAW_FRESHNESS_CHECK not in job_checks
    assert defs.resolve_sensor_def("raw_costs_freshness_sensor") is raw_freshness_sensor


def test_yesterday_must_be_there_by_ten(sentinel_env, instance: dg.DagsterInstance) -> None:
    assert run_days(instance, date(2025, 1, 17), date(2025, 1, 19)).success

    # The sensor asks for the check on its first tick (it has never run).
    with freeze_time(AFTER_DEADLINE):
        tick = raw_freshness_sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs))
    assert [r.asset_check_keys for r in tick.run_requests or []] == [[RAW_FRESHNESS_CHECK]]

    late = _evaluate(instance, AFTER_DEADLINE)
    assert not late.passed and "2025-01-20" in (late.description or "")
    assert late.severity == dg.AssetCheckSeverity.ERROR

    on_time = _evaluate(instance, BEFORE_DEADLINE)  # before 10:00 the 19th is enough
    assert on_time.passed and "2025-01-19" in (on_time.description or "")

    assert run_days(instance, date(2025, 1, 20), date(2025, 1, 20)).success
    fresh = _evaluate(instance, AFTER_DEADLINE)
    assert fresh.passed and "2025-01-20" in (fresh.description or "")
