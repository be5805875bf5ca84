"""The asset checks' rules, alone and as recorded by a real backfill."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from sentinel_pipeline.defs.checks import (
    anomalies_consistent,
    baseline_coverage,
    raw_days_complete,
)
from sentinel_pipeline_tests.conftest import Backfill

D = date(2025, 3, 1)


def _costs(total: float) -> pd.DataFrame:
    return pd.DataFrame({"cost": [total / 2, total / 2]})


def test_raw_days_complete_flags_missing_and_shrunken_days() -> None:
    ok, _ = raw_days_complete({D: _costs(100), D + timedelta(days=1): _costs(90)}, 95.0)
    assert ok
    ok, details = raw_days_complete({D: _costs(100), D + timedelta(days=1): _costs(40)}, None)
    assert not ok and "2025-03-02" in details["days_under_half_the_day_before"]
    ok, details = raw_days_complete({D: pd.DataFrame({"cost": []})}, 100.0)
    assert not ok and details["days_without_costs"] == "2025-03-01"
    ok, details = raw_days_complete({D: _costs(30)}, 100.0)  # against the day before the range
    assert not ok


def test_baseline_coverage() -> None:
    assert baseline_coverage({D: pd.DataFrame({"history_days": [30, 20, 1]})})[0]
    passed, details = baseline_coverage({D: pd.DataFrame({"history_days": [3, 20, 1]})})
    assert not passed and details["share_with_7_days_history"] == round(1 / 3, 4)


def test_anomalies_consistent_catches_each_problem() -> None:
    good = pd.DataFrame({"usage_date": [D], "actual_cost": [150.0], "expected_cost": [100.0],
                         "impact": [50.0], "kind": ["spike"], "score": [6.0],
                         "anomaly_start": [D]})
    assert anomalies_consistent({D: good})[0]
    for column, value in [("impact", 49.0), ("kind", "weird"), ("score", float("inf")),
                          ("anomaly_start", D + timedelta(days=1))]:
        bad = good.assign(**{column: [value]})
        passed, details = anomalies_consistent({D: bad})
        assert not passed and details["problems"] != "none"


def test_backfill_records_the_checks(demo_backfill: Backfill) -> None:
    evaluations = {e.check_name: e for e in demo_backfill.result.get_asset_check_evaluations()}
    assert set(evaluations) == {"days_complete", "no_missing_values", "one_currency_per_series",
                                "schema_matches", "coverage", "history_complete", "consistent",
                                "explained", "every_series_scored", "alerts_followed"}
    assert all(e.passed for e in evaluations.values())
    assert evaluations["consistent"].passed and evaluations["days_complete"].passed
    assert evaluations["coverage"].passed  # the last day has 89 days of history


def test_scores_of_one_service_split_between_owners_are_not_duplicates() -> None:
    from sentinel_pipeline.defs.checks import scores_complete

    rows = pd.DataFrame({"service": ["EC2", "EC2"], "account_id": ["1", "1"],
                         "region": ["us-east-1", "us-east-1"], "owner": ["team-a", "team-b"],
                         "score": [0.5, 1.0]})
    assert scores_complete({D: rows})[0]  # two owners' series, not one series scored twice
    passed, details = scores_complete({D: pd.concat([rows, rows.head(1)])})
    assert not passed and "scored twice" in details["problems"]
