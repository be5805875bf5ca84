"""The `focus` source on the public FOCUS 1.0 sample (FinOps Foundation, CC BY 4.0, see
data/focus-1.0/ATTRIBUTION.md): hourly charge periods without a timezone, AWS, Microsoft and
Oracle rows, "Usage-Based" / "Usage-based", tags holding the text "NULL", a credit and two
adjustments.

The expected numbers were computed once BY HAND, independently of the code under test, with
Python's csv module and decimal.Decimal over the uncompressed file: day = the first 10
characters of ChargePeriodStart; rows kept when ChargeCategory.lower() is usage, purchase or
tax; RegionId "NULL" or empty -> "global"; BilledCost summed per (day, ServiceName,
SubAccountId, RegionId).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from sentinel_pipeline.defs.resources import CostSourceResource
from sentinel_pipeline.sources import root_causes as rc
from sentinel_pipeline.sources.base import SourceResult
from sentinel_pipeline.sources.focus import read_cost_files

SAMPLE = Path(__file__).parent / "data" / "focus-1.0"
D = date


@pytest.fixture(scope="module")
def sample_result() -> SourceResult:
    return read_cost_files(str(SAMPLE), D(2024, 9, 1), D(2024, 9, 30))


@pytest.fixture(scope="module")
def sample(sample_result: SourceResult) -> pd.DataFrame:
    return sample_result.rows


def test_daily_totals_match_the_hand_check(sample) -> None:  # type: ignore[no-untyped-def]
    totals = sample.groupby("usage_date")["cost"].sum()
    assert len(totals) == 30  # every day of September 2024
    hand = {D(2024, 9, 1): 0.12759140350, D(2024, 9, 13): 2.18537286780,
            D(2024, 9, 25): 0.64193796510, D(2024, 9, 30): 1.06985930120}
    for day, expected in hand.items():
        assert totals[day] == pytest.approx(expected, abs=1e-9)
    assert sample["usage_date"].map(type).eq(date).all()
    assert set(sample["currency"]) == {"USD"} and set(sample["source"]) == {"focus"}
    assert not sample["estimated"].any()


@pytest.mark.parametrize(("day", "service", "account", "region", "expected"), [
    # AWS, the credit of -2.6137 on this day is left out of the series
    (D(2024, 9, 24), "Amazon Elastic Compute Cloud", "11353890204", "us-east-1", 2.79521065760),
    (D(2024, 9, 18), "Amazon Elastic Compute Cloud", "11353890204", "us-east-1", 2.04322801040),
    (D(2024, 9, 19), "Azure Kubernetes Service",
     "/subscriptions/ed570627-0265-4620-bb42-bae06bcfa914", "eastus", 1.58088000000),
    (D(2024, 9, 5), "Azure DB for MySQL",
     "/subscriptions/64e355d7-997c-491d-b0c1-8414dccfcf42", "eastus", 0.37096774194),
    # Oracle, RegionId "NULL" -> global
    (D(2024, 9, 30), "COMPUTE",
     "ocid6.tenancy.oc6..aaaaaaaamz7ywh2epitrng9d8a7rj7o6thfwjvz79n1hg9apiq7mvj8rpoia",
     "global", 0.24000000000),
])
def test_series_match_the_hand_check(  # type: ignore[no-untyped-def]
    sample, day: date, service: str, account: str, region: str, expected: float
) -> None:
    row = sample[(sample["usage_date"] == day) & (sample["service"] == service)
                 & (sample["account_id"] == account) & (sample["region"] == region)]
    assert len(row) == 1
    assert float(row["cost"].iloc[0]) == pytest.approx(expected, abs=1e-9)


def test_credits_and_adjustments_are_reported_not_counted(
    sample: pd.DataFrame, sample_result: SourceResult
) -> None:
    assert sample_result.metadata["focus_excluded_cost"] == pytest.approx(
        {"credit": -2.6137, "adjustment": 0.272})
    assert sample_result.metadata["focus_files_read"] == 1
    assert sample[["service", "account_id", "region"]].drop_duplicates().shape[0] == 281


def test_root_causes_on_the_sample() -> None:
    """The drill-down names the charges and resources behind a day of an AWS series."""
    anomalies = pd.DataFrame({"usage_date": [D(2024, 9, 24), D(2024, 9, 24)],
                              "service": ["Amazon Elastic Compute Cloud", "no such service"],
                              "account_id": ["11353890204", "1"], "region": ["us-east-1", "x"]})
    found = CostSourceResource(source="focus", source_path=str(SAMPLE)).root_causes(
        anomalies).causes
    assert found[1] == ""
    causes = rc.from_json(found[0])
    # Hand check (csv module): on 2024-09-24 the series' largest charges by (ChargeDescription,
    # ResourceId) are 1.624 and 1.14, both absent from the 14 days before.
    top = [(c["usage_type"], c["resource_id"], c["actual"], c["baseline"]) for c in causes[:2]]
    assert top == [
        ("$1.624 per On Demand Linux g5.4xlarge Instance Hour", "i-0l6bb5al993lfa983", 1.62, 0.0),
        ("$1.14 per On Demand Linux g3.4xlarge Instance Hour", "i-0b3b3095474a3772a", 1.14, 0.0),
    ]
