"""Root causes: the ranking every source shares, and the demo source's drill-down end to end."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from sentinel_pipeline.sources.demo import demo_known_anomalies
from sentinel_pipeline.sources.root_causes import (
    describe,
    from_json,
    material,
    to_json,
    top_contributors,
)
from sentinel_pipeline_tests.conftest import Backfill, run_days

DAY = date(2025, 3, 10)


def _detail(rows: list[tuple[int, str, str, float]]) -> pd.DataFrame:
    """(days before DAY, region, usage type, cost) -> a detail frame."""
    return pd.DataFrame([{"usage_date": DAY - timedelta(days=back), "region": region,
                          "usage_type": usage, "cost": cost} for back, region, usage, cost in rows])


def test_new_usage_ranks_first_and_shares_split_the_growth() -> None:
    rows = [(back, "us-east-1", "BoxUsage:m5.large", 100.0) for back in range(1, 15)]
    rows += [(0, "us-east-1", "BoxUsage:m5.large", 130.0),           # +30
             (0, "us-west-2", "BoxUsage:p4d.24xlarge", 90.0)]        # new: +90
    causes = top_contributors(_detail(rows), DAY)
    assert [(c["region"], c["usage_type"]) for c in causes] == [
        ("us-west-2", "BoxUsage:p4d.24xlarge"), ("us-east-1", "BoxUsage:m5.large")]
    assert causes[0]["baseline"] == 0.0 and causes[0]["increase"] == 90.0
    assert causes[0]["share"] == 0.75 and causes[1]["share"] == 0.25


def test_missing_days_count_as_zero_and_shrinking_rows_are_not_causes() -> None:
    # Seven of the fourteen baseline days had $28: the baseline is $14/day, not $28.
    rows = [(back, "eu-west-1", "NatGateway-Bytes", 28.0) for back in range(1, 15, 2)]
    rows += [(back, "eu-west-1", "EBS:VolumeUsage", 50.0) for back in range(1, 15)]
    rows += [(0, "eu-west-1", "NatGateway-Bytes", 64.0), (0, "eu-west-1", "EBS:VolumeUsage", 20.0)]
    causes = top_contributors(_detail(rows), DAY)
    assert len(causes) == 1  # the EBS line fell: it explains nothing
    assert causes[0]["baseline"] == 14.0 and causes[0]["increase"] == 50.0
    assert causes[0]["share"] == 1.0  # share of the growth, never above 1


def test_day_after_is_ignored_and_top_limits_the_list() -> None:
    rows = [(0, "us-east-1", f"Usage{i}", float(10 + i)) for i in range(8)]
    rows += [(-1, "us-east-1", "Later", 1000.0)]  # after DAY: not part of the comparison
    causes = top_contributors(_detail(rows), DAY, top=3)
    assert [c["usage_type"] for c in causes] == ["Usage7", "Usage6", "Usage5"]
    assert top_contributors(_detail(rows).iloc[:0], DAY) == []


def test_json_round_trip_and_description() -> None:
    causes = top_contributors(_detail([(0, "us-west-2", "BoxUsage:p4d.24xlarge", 812.4)]), DAY)
    assert from_json(to_json(causes)) == causes
    assert from_json("") == [] and from_json("not json") == [] and from_json(None) == []
    assert to_json([]) == ""
    assert describe(causes) == "us-west-2 BoxUsage:p4d.24xlarge +$812.40 (new; 100 % of the growth)"


def test_only_lines_with_5_percent_of_the_growth_and_of_the_impact_are_material() -> None:
    causes = [{"usage_type": "Big", "increase": 400.0, "share": 0.80},
              {"usage_type": "Small", "increase": 1.86, "share": 0.004},   # under 5 % of growth
              {"usage_type": "Unjudged"},                                  # no numbers: kept
              {"usage_type": "Edge", "increase": 25.0, "share": 0.05}]
    assert [c["usage_type"] for c in material(causes, 500.0)] == ["Big", "Unjudged", "Edge"]
    # The growth over the 14-day average can be far smaller than the impact (the average holds
    # an earlier episode): a line with most of that growth but 3 % of the impact explains nothing.
    lead = [{"usage_type": "Lead", "increase": 30.0, "share": 0.6}]
    assert material(lead, 1000.0) == [] and describe(lead, 1000.0) == ""
    assert material(lead, None) == lead  # no impact known: only the share bound applies
    assert material(lead, -60.0) == [] and material(lead, 0.0) == []  # a drop: nothing grew it


def test_demo_alerts_say_where_the_money_went(demo_backfill: Backfill) -> None:
    """Every known anomaly's alert names the unusual usage type the demo put the money in."""
    alerts = pd.concat(pd.read_parquet(p) for p in sorted(
        (demo_backfill.data_dir / "annotated_alerts").glob("*/data.parquet")))
    known = demo_known_anomalies(date(2025, 2, 15), demo_backfill.end)
    assert len(known) >= 4
    for _, event in known.iterrows():
        found = alerts[(alerts["service"] == event["service"])
                       & (alerts["account_id"] == event["account_id"])
                       & (alerts["usage_date"] == event["start_date"])]
        assert len(found) == 1, event.to_dict()
        causes = from_json(found.iloc[0]["root_causes"])
        assert causes, event.to_dict()
        top = causes[0]
        assert top["increase"] > 0.5 * event["extra_cost_per_day"]
        assert top["share"] > 0.5
        assert top["usage_type"] not in {"Usage"}  # the unusual line, not the usual split


def test_a_run_drills_into_its_largest_alerts_only(backfill_copy: Path,
                                                   instance: dg.DagsterInstance) -> None:
    """max_drill_downs bounds the drill-downs of a run (billed calls on Cost Explorer)."""
    start, end = date(2025, 2, 1), date(2025, 3, 31)
    config = {"resources": {"source": {"config": {"max_drill_downs": 2}}}}
    # The drill-down is cost_anomalies' step: rerun it alone on the backfilled costs and baselines.
    result = run_days(instance, start, end, run_config=config, assets=["cost_anomalies"])
    alerts = pd.concat(pd.read_parquet(backfill_copy / "cost_anomalies" / f"date={day}" /
                                       "data.parquet") for day in pd.date_range(start, end).date)
    alerts = alerts[alerts["alert"]]
    assert len(alerts) > 2
    drilled = alerts[alerts["root_causes"] != ""]
    assert len(drilled) == 2
    assert set(drilled["impact"]) == set(alerts["impact"].nlargest(2))
    mats = result.asset_materializations_for_node("cost_anomalies")
    assert sum(m.metadata["root_causes_found"].value for m in mats) == 2  # each day its own
