"""The blocking raw_daily_costs checks and the alert check: rules alone, on real Parquet files,
and as recorded by a real run (which must stop before Slack when one fails)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from sentinel_pipeline.annotation.prompt import ACTIONS
from sentinel_pipeline.definitions import defs
from sentinel_pipeline.defs.checks import (
    RAW_ARROW_TYPES,
    alerts_explained,
    parquet_schema_matches,
    raw_check_results,
    raw_no_missing_values,
    raw_one_currency_per_series,
)
from sentinel_pipeline.defs.resources import CostSourceResource
from sentinel_pipeline.schema import RAW_COLUMNS, conform
from sentinel_pipeline.sources.base import SourceResult
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.conftest import run_days

D = date(2025, 3, 1)


def _raw(**changes: list) -> pd.DataFrame:
    rows = {"usage_date": [D, D], "service": ["EC2", "S3"], "account_id": ["111", "111"],
            "region": ["us-east-1", "us-east-1"], "cost": [10.0, 2.5],
            "currency": ["USD", "USD"], "estimated": [False, False], "source": ["demo", "demo"]}
    return conform(pd.DataFrame({**rows, **changes}), RAW_COLUMNS)


def _results(tmp_path: Path, frame: pd.DataFrame) -> dict[str, dg.AssetCheckResult]:
    store = TableStore(str(tmp_path))
    store.write_partition("raw_daily_costs", D, frame)
    return {r.check_name: r for r in raw_check_results(store, {D: frame}, None)}


def test_missing_values_are_counted_per_column() -> None:
    assert raw_no_missing_values({D: _raw()})[0]
    passed, details = raw_no_missing_values({D: _raw(cost=[float("nan"), 1.0],
                                                    region=["", "us-east-1"])})
    assert not passed and details["missing_values"] == "region: 1, cost: 1"


def test_mixed_currency_within_a_series_is_found_across_days() -> None:
    other_day = _raw(currency=["EUR", "USD"]).assign(usage_date=date(2025, 3, 2))
    passed, details = raw_one_currency_per_series({D: _raw(), date(2025, 3, 2): other_day})
    assert not passed and details["examples"] == "EC2 / 111 / us-east-1"
    assert raw_one_currency_per_series({D: _raw(currency=["EUR", "USD"])})[0]


def test_schema_is_read_back_from_the_written_file(tmp_path: Path) -> None:
    good = _results(tmp_path, _raw())
    assert all(r.passed for r in good.values()), good
    drifted = _raw().assign(cost=["10.0", "2.5"])  # a source that sends text costs
    bad = _results(tmp_path, drifted)["schema_matches"]
    assert not bad.passed
    assert "cost is large_string, expected double" in bad.metadata["problems"].value
    reordered = parquet_schema_matches(
        pa.schema([("service", pa.string()), ("usage_date", pa.date32())]), RAW_ARROW_TYPES)
    assert not reordered[0] and "columns start" in reordered[1]["problems"]


def test_alerts_need_an_explanation_and_a_known_action() -> None:
    good = pd.DataFrame({"explanation": ["EC2 doubled"], "action": ["stop"]})
    assert alerts_explained({D: good}, ACTIONS)[0]
    bad = pd.DataFrame({"explanation": ["  ", "ok"], "action": ["stop", "panic"]})
    passed, details = alerts_explained({D: bad}, ACTIONS)
    assert not passed
    assert (details["without_explanation"], details["with_unknown_action"]) == (1, 1)


def test_blocking_checks_are_declared_blocking() -> None:
    specs = {s.name: s for s in defs.resolve_assets_def("raw_daily_costs").check_specs}
    assert {n for n, s in specs.items() if s.blocking} == {
        "no_missing_values", "one_currency_per_series", "schema_matches"}
    assert not specs["days_complete"].blocking


def test_a_failed_blocking_check_stops_the_run_before_alerts(
    sentinel_env: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A source bug validate_raw_costs does not catch: the region lost on every row.
    fetch = CostSourceResource.fetch

    def without_region(self: CostSourceResource, start: date, end: date) -> SourceResult:
        fetched = fetch(self, start, end)
        return SourceResult(fetched.rows.assign(region=""), fetched.metadata)

    monkeypatch.setattr(CostSourceResource, "fetch", without_region)
    result = run_days(instance, D, D, raise_on_error=False)
    assert not result.success
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations["no_missing_values"] is False
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert done == {"raw_daily_costs"}
    assert not (sentinel_env / "annotated_alerts").exists()
