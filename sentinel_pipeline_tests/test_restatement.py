"""The restatement sensor on a real instance: one rerun a day, from the first estimated day of
the window to yesterday, whatever the source; nothing when the recent days are final."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from sentinel_pipeline.definitions import defs
from sentinel_pipeline.defs.resources import CostSourceResource, StorageResource
from sentinel_pipeline.schema import RAW_COLUMNS, conform
from sentinel_pipeline.storage import TableStore

TODAY = datetime.now(UTC).date()
YESTERDAY = TODAY - timedelta(days=1)


def _write_day(store: TableStore, day: date, estimated: list[bool]) -> None:
    rows = pd.DataFrame({
        "usage_date": [day] * len(estimated), "service": [f"svc{i}" for i in
                                                          range(len(estimated))],
        "account_id": "1", "region": "all", "cost": 10.0, "currency": "USD",
        "estimated": estimated, "source": "cur",
    })
    store.write_partition("raw_daily_costs", day, conform(rows, RAW_COLUMNS))


def _tick(instance: dg.DagsterInstance, data_dir: Path, cursor: str | None = None,
          restate_days: int = 14) -> dg.SensorExecutionData:
    sensor = defs.resolve_sensor_def("restatement_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                      resources={
        "storage": StorageResource(data_dir=str(data_dir)),
        "source": CostSourceResource(source="cur", restate_days=restate_days)})
    return sensor.evaluate_tick(context)


def test_one_rerun_from_the_first_estimated_day_once_a_day(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    store = TableStore(str(tmp_path))
    for back in range(1, 20):
        day = TODAY - timedelta(days=back)
        _write_day(store, day, [False, back in (3, 5, 16)])  # 16 days back: outside the window
    first = _tick(instance, tmp_path)
    assert first.run_requests is not None and len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.job_name in (None, "sentinel_daily_job")
    assert request.run_key == f"restatement-{TODAY.isoformat()}"
    assert request.tags["sentinel/trigger"] == "restatement"
    assert request.tags["dagster/asset_partition_range_start"] == (
        TODAY - timedelta(days=5)).isoformat()
    assert request.tags["dagster/asset_partition_range_end"] == YESTERDAY.isoformat()
    assert first.cursor == TODAY.isoformat()

    again = _tick(instance, tmp_path, cursor=first.cursor)
    assert not again.run_requests and "Already checked" in (again.skip_message or "")

    wider = _tick(instance, tmp_path, restate_days=20)
    assert wider.run_requests[0].tags["dagster/asset_partition_range_start"] == (
        TODAY - timedelta(days=16)).isoformat()


def test_only_yesterday_estimated_is_a_single_partition_run(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    store = TableStore(str(tmp_path))
    _write_day(store, YESTERDAY, [True])
    request = _tick(instance, tmp_path).run_requests[0]
    assert request.partition_key == YESTERDAY.isoformat()
    assert "dagster/asset_partition_range_start" not in request.tags


def test_the_rerun_stops_at_the_last_day_already_loaded(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """Before the 09:00 schedule loads yesterday, the sensor must not load it early."""
    store = TableStore(str(tmp_path))
    for back in range(2, 8):
        _write_day(store, TODAY - timedelta(days=back), [back == 6])
    request = _tick(instance, tmp_path).run_requests[0]
    assert request.tags["dagster/asset_partition_range_start"] == (
        TODAY - timedelta(days=6)).isoformat()
    assert request.tags["dagster/asset_partition_range_end"] == (
        TODAY - timedelta(days=2)).isoformat()


@pytest.mark.parametrize("write", [True, False])
def test_final_or_missing_days_request_nothing(
    instance: dg.DagsterInstance, tmp_path: Path, write: bool
) -> None:
    if write:
        store = TableStore(str(tmp_path))
        for back in range(1, 15):
            _write_day(store, TODAY - timedelta(days=back), [False, False])
        _write_day(store, TODAY - timedelta(days=15), [True])  # older than the window
    result = _tick(instance, tmp_path)
    assert not result.run_requests
    assert "No estimated costs" in (result.skip_message or "")
    assert result.cursor == TODAY.isoformat()
