"""The `focus` source on exports of every FOCUS version, 1.0 to 1.4, each with its full column list.

The column lists are the specification's, not the reader's: each is the Column ID of every
column the release's columns index includes, from the FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec
repository. Every file is generated in tmp_path from those lists and the same few line items
(ROWS), whose expected daily totals below were added up by hand; columns the reader does not
read are filled with plausible values (other cost metrics deliberately differ from BilledCost).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sentinel_pipeline.sources import root_causes as rc
from sentinel_pipeline.sources.focus import focus_root_causes, read_cost_files

D = dt.date
UTC = dt.UTC

# Tag v1.0, specification/columns/columns.mdpp (43 columns).
FOCUS_1_0: tuple[str, ...] = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart",
    "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "ConsumedQuantity", "ConsumedUnit",
    "ContractedCost", "ContractedUnitPrice", "EffectiveCost", "InvoiceIssuerName", "ListCost",
    "ListUnitPrice", "PricingCategory", "PricingQuantity", "PricingUnit", "ProviderName",
    "PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType",
    "ServiceCategory", "ServiceName", "SkuId", "SkuPriceId", "SubAccountId", "SubAccountName",
    "Tags",
)
# Tag v1.1, specification/columns/columns.mdpp (50 columns).
FOCUS_1_1: tuple[str, ...] = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId",
    "CapacityReservationStatus", "ChargeCategory", "ChargeClass", "ChargeDescription",
    "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory",
    "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountUnit",
    "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice", "EffectiveCost",
    "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory", "PricingQuantity",
    "PricingUnit", "ProviderName", "PublisherName", "RegionId", "RegionName", "ResourceId",
    "ResourceName", "ResourceType", "ServiceCategory", "ServiceName", "ServiceSubcategory",
    "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName",
    "Tags",
)
# Tag v1.2, specification/columns/columns.mdpp (57 columns).
FOCUS_1_2: tuple[str, ...] = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName",
    "BillingAccountType", "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart",
    "CapacityReservationId", "CapacityReservationStatus", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart",
    "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName",
    "CommitmentDiscountQuantity", "CommitmentDiscountStatus", "CommitmentDiscountType",
    "CommitmentDiscountUnit", "ConsumedQuantity", "ConsumedUnit", "ContractedCost",
    "ContractedUnitPrice", "EffectiveCost", "InvoiceId", "InvoiceIssuerName", "ListCost",
    "ListUnitPrice", "PricingCategory", "PricingCurrency", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice", "PricingQuantity",
    "PricingUnit", "ProviderName", "PublisherName", "RegionId", "RegionName", "ResourceId",
    "ResourceName", "ResourceType", "ServiceCategory", "ServiceName", "ServiceSubcategory",
    "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName",
    "SubAccountType", "Tags",
)
# 1.3 (ratified 2025-12): specification/datasets/cost_and_usage/columns/columns.mdpp at commit
# d62b68b30be4456b24ac5d93e2339e42a6bd8091 (65 columns: 1.2's 57, ProviderName and
# PublisherName kept though deprecated, plus the allocation columns, ContractApplied,
# HostProviderName and ServiceProviderName).
FOCUS_1_3: tuple[str, ...] = (
    "AllocatedMethodId", "AllocatedMethodDetails", "AllocatedResourceId",
    "AllocatedResourceName", "AllocatedTags", "AvailabilityZone", "BilledCost",
    "BillingAccountId", "BillingAccountName", "BillingAccountType", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId",
    "CapacityReservationStatus", "ChargeCategory", "ChargeClass", "ChargeDescription",
    "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory",
    "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountUnit",
    "ConsumedQuantity", "ConsumedUnit", "ContractApplied", "ContractedCost",
    "ContractedUnitPrice", "EffectiveCost", "HostProviderName", "InvoiceId", "InvoiceIssuerName",
    "ListCost", "ListUnitPrice", "PricingCategory", "PricingCurrency",
    "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice", "PricingQuantity", "PricingUnit", "ProviderName",
    "PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType",
    "ServiceProviderName", "ServiceCategory", "ServiceName", "ServiceSubcategory", "SkuId",
    "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName",
    "SubAccountType", "Tags",
)
# 1.4 (ratified 2026-06): specification/datasets/cost_and_usage/columns/columns.mdpp at commit
# 02645d23d2d4dceb005c685080037febee890dea (1.3 without ProviderName and PublisherName, which
# 1.4 removes, and with TagDetails), plus CommitmentProgramEligibilityDetails and
# InvoiceDetailId, whose column files in that folder say "Introduced (version) 1.4"
# (66 columns).
FOCUS_1_4: tuple[str, ...] = (
    "AllocatedMethodId", "AllocatedMethodDetails", "AllocatedResourceId",
    "AllocatedResourceName", "AllocatedTags", "AvailabilityZone", "BilledCost",
    "BillingAccountId", "BillingAccountName", "BillingAccountType", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId",
    "CapacityReservationStatus", "ChargeCategory", "ChargeClass", "ChargeDescription",
    "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory",
    "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountUnit",
    "CommitmentProgramEligibilityDetails", "ConsumedQuantity", "ConsumedUnit",
    "ContractApplied", "ContractedCost", "ContractedUnitPrice", "EffectiveCost",
    "HostProviderName", "InvoiceDetailId", "InvoiceId", "InvoiceIssuerName", "ListCost",
    "ListUnitPrice", "PricingCategory", "PricingCurrency", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice", "PricingQuantity",
    "PricingUnit", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType",
    "ServiceProviderName", "ServiceCategory", "ServiceName", "ServiceSubcategory", "SkuId",
    "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName",
    "SubAccountType", "TagDetails", "Tags",
)
VERSIONS: dict[str, tuple[str, ...]] = {
    "1.0": FOCUS_1_0, "1.1": FOCUS_1_1, "1.2": FOCUS_1_2, "1.3": FOCUS_1_3, "1.4": FOCUS_1_4,
}

A, B = "012345678901", "210987654321"
DAY0 = D(2026, 3, 10)
ROUTE = "$0.0928 per On Demand Linux m7g.large Instance Hour"
# Line items: (day offset from day0, hour, ServiceName, SubAccountId, RegionId, BilledCost,
# ChargeCategory, ChargeClass, other columns). Costs are exact in binary, so sums are exact.
ROWS: list[tuple[int, int, str, str | None, str | None, float, str, str | None,
                 dict[str, Any]]] = [
    (-40, 23, "Amazon EC2", A, "us-east-1", 100.0, "Usage", None, {}),  # long before the range
    (0, 1, "Amazon EC2", A, "us-east-1", 1.25, "Usage", None, {}),
    (0, 2, "Amazon EC2", A, "us-east-1", 2.5, "Usage", None, {}),
    (0, 5, "Amazon S3", A, None, 0.375, "Usage", None, {}),  # no region: "global"
    (0, 0, "Amazon EC2", A, None, 0.25, "Tax", None, {}),
    (0, 3, "Amazon EC2", A, "us-east-1", -1.0, "Credit", None, {}),
    # A correction of an invoiced period: dated when incurred, left out, reported.
    (0, 4, "Amazon EC2", A, "us-east-1", 0.75, "Usage", "Correction", {}),
    # One EKS charge of 10.0 split (FOCUS 1.3 allocation) into two namespaces' shares: the
    # dimensions stay the origin's, so the series still gets 10.0.
    (1, 0, "Amazon EKS", B, "us-west-2", 6.0, "Usage", None,
     {"AllocatedMethodId": "eks-split-cost", "AllocatedResourceId": "ns/payments",
      "AllocatedResourceName": "payments", "ResourceId": "arn:aws:eks:cluster/prod"}),
    (1, 0, "Amazon EKS", B, "us-west-2", 4.0, "Usage", None,
     {"AllocatedMethodId": "eks-split-cost", "AllocatedResourceId": "ns/search",
      "AllocatedResourceName": "search", "ResourceId": "arn:aws:eks:cluster/prod"}),
    (1, 6, "AWS Support", None, None, 5.0, "Purchase", None, {}),  # no sub account: "unknown"
    # ContractApplied reports how much of this charge counted towards a contract commitment:
    # an annotation of the 2.0, never a further cost.
    (1, 1, "Amazon EC2", A, "us-east-1", 2.0, "Usage", None,
     {"ContractApplied": json.dumps([{
         "ContractCommitmentId": "cc-1", "ContractCommitmentAppliedCost": 999.0,
         "ContractCommitmentAppliedQuantity": None, "ContractCommitmentAppliedUnit": None}])}),
]
# Hand totals of ROWS for days day0 and day0+1: (day offset, service, account, region, cost).
EXPECTED = [
    (0, "Amazon EC2", A, "global", 0.25),
    (0, "Amazon EC2", A, "us-east-1", 3.75),
    (0, "Amazon S3", A, "global", 0.375),
    (1, "AWS Support", "unknown", "global", 5.0),
    (1, "Amazon EC2", A, "us-east-1", 2.0),
    (1, "Amazon EKS", B, "us-west-2", 10.0),
]
EXCLUDED = {"correction": 0.75, "credit": -1.0}
# Other cost metrics, as multiples of BilledCost.
OTHER_COSTS = {"EffectiveCost": 0.5, "ListCost": 2.0, "ContractedCost": 1.5}
_TIMES = ("ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd")
_JSON = ("Tags", "AllocatedTags", "TagDetails", "AllocatedMethodDetails", "SkuPriceDetails",
         "CommitmentProgramEligibilityDetails")


def _is_number(column: str) -> bool:
    return column.endswith(("Cost", "UnitPrice", "Quantity"))


def _records(columns: tuple[str, ...], day0: dt.date) -> list[dict[str, Any]]:
    """ROWS as line items of an export with exactly these columns."""
    out = []
    for offset, hour, service, account, region, billed, category, charge_class, extra in ROWS:
        start = dt.datetime.combine(day0 + dt.timedelta(days=offset), dt.time(hour), UTC)
        period = dt.datetime(start.year, start.month, 1, tzinfo=UTC)
        known: dict[str, Any] = {
            "ChargePeriodStart": start, "ChargePeriodEnd": start + dt.timedelta(hours=1),
            "BillingPeriodStart": period, "BillingPeriodEnd": period + dt.timedelta(days=31),
            "ServiceName": service, "SubAccountId": account, "RegionId": region,
            "BilledCost": billed, "BillingCurrency": "USD", "ChargeCategory": category,
            "ChargeClass": charge_class, "ChargeDescription": ROUTE,
            "ProviderName": "AWS", "PublisherName": "AWS", "ServiceProviderName": "AWS",
            "HostProviderName": "AWS", "InvoiceIssuerName": "AWS", "ResourceId": f"i-{hour}",
            **{name: billed * factor for name, factor in OTHER_COSTS.items()},
            **extra,
        }
        record = {}
        for column in columns:
            if column in known:
                record[column] = known[column]
            elif column in _JSON:
                record[column] = json.dumps({"team": "platform"})
            elif _is_number(column):
                record[column] = 1.0
            else:
                record[column] = None if column.startswith("Allocated") else f"{column}-value"
        out.append(record)
    return out


def _write(path: Path, columns: tuple[str, ...], day0: dt.date, decimals: bool = False) -> Path:
    """One export file of ROWS: Parquet with typed columns, or CSV (.csv / .csv.gz) as text."""
    records = _records(columns, day0)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        arrays = {}
        for column in columns:
            values = [r[column] for r in records]
            if column in _TIMES:
                arrays[column] = pa.array(values, pa.timestamp("us", tz="UTC"))
            elif _is_number(column) and decimals:
                arrays[column] = pa.array([Decimal(str(v)) for v in values], pa.decimal128(18, 6))
            elif _is_number(column):
                arrays[column] = pa.array(values, pa.float64())
            else:
                arrays[column] = pa.array(values, pa.string())
        pq.write_table(pa.table(arrays), path)
        return path

    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, dt.datetime):
            return value.strftime("%Y-%m-%dT%H:%M:%SZ")
        value = str(value)
        return '"' + value.replace('"', '""') + '"' if ("," in value or '"' in value) else value

    lines = [",".join(columns)] + [",".join(text(r[c]) for c in columns) for r in records]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def _totals(rows: pd.DataFrame) -> list[tuple[Any, ...]]:
    return [(r.usage_date, r.service, r.account_id, r.region, r.cost, r.currency)
            for r in rows.itertuples()]


def _expected(day0: dt.date, factor: float = 1.0) -> list[tuple[Any, ...]]:
    return [(day0 + dt.timedelta(days=offset), service, account, region, cost * factor, "USD")
            for offset, service, account, region, cost in EXPECTED]


# --------------------------------------------------------------------------- the lists


def test_column_lists_follow_the_releases() -> None:
    """What each release changed in the columns the reader depends on."""
    counts = {version: len(set(columns)) for version, columns in VERSIONS.items()}
    assert counts == {"1.0": 43, "1.1": 50, "1.2": 57, "1.3": 65, "1.4": 66}
    core = {"ChargePeriodStart", "ServiceName", "SubAccountId", "RegionId", "BilledCost",
            "EffectiveCost", "ListCost", "ContractedCost", "BillingCurrency", "ChargeCategory",
            "ChargeClass", "ChargeDescription", "SkuId", "ResourceId"}
    for columns in VERSIONS.values():
        assert core <= set(columns)
    for version in ("1.0", "1.1", "1.2", "1.3"):
        assert {"ProviderName", "PublisherName"} <= set(VERSIONS[version])
    assert not {"ProviderName", "PublisherName"} & set(FOCUS_1_4)
    for version in ("1.3", "1.4"):
        assert {"ServiceProviderName", "HostProviderName", "AllocatedMethodId",
                "ContractApplied"} <= set(VERSIONS[version])


# --------------------------------------------------------------------------- one version


@pytest.mark.parametrize(("version", "name", "decimals"), [
    ("1.0", "export.csv", False),
    ("1.0", "export.parquet", False),
    ("1.1", "export.parquet", False),
    ("1.2", "export.csv.gz", False),
    ("1.2", "export.parquet", True),
    ("1.3", "export.parquet", False),
    ("1.4", "export.parquet", False),
    ("1.4", "export.csv", False),
])
def test_every_version_gives_the_hand_totals(
    tmp_path: Path, version: str, name: str, decimals: bool
) -> None:
    """Same line items, same daily totals, whatever the version and format: split charges
    summed, credits and corrections reported apart, ContractApplied never added."""
    _write(tmp_path / "billing_period=2026-03" / name, VERSIONS[version], DAY0, decimals)
    result = read_cost_files(str(tmp_path), DAY0, DAY0 + dt.timedelta(days=1))
    assert _totals(result.rows) == _expected(DAY0)
    assert result.metadata["focus_excluded_cost"] == EXCLUDED
    assert set(result.rows["source"]) == {"focus"} and not result.rows["estimated"].any()


@pytest.mark.parametrize("version", list(VERSIONS))
def test_other_cost_metrics_in_every_version(tmp_path: Path, version: str) -> None:
    """EffectiveCost is read from its own column (here half of BilledCost)."""
    _write(tmp_path / "export.parquet", VERSIONS[version], DAY0)
    rows = read_cost_files(str(tmp_path), DAY0, DAY0 + dt.timedelta(days=1),
                           cost_column="EffectiveCost").rows
    assert _totals(rows) == _expected(DAY0, OTHER_COSTS["EffectiveCost"])


def test_1_4_without_provider_and_publisher(tmp_path: Path) -> None:
    """A 1.4 export has no ProviderName or PublisherName: the series and the drill-down work."""
    path = _write(tmp_path / "export.parquet", FOCUS_1_4, DAY0)
    names = pq.read_schema(path).names
    assert "ProviderName" not in names and "PublisherName" not in names
    assert "ServiceProviderName" in names and "HostProviderName" in names
    day1 = DAY0 + dt.timedelta(days=1)
    rows = read_cost_files(str(tmp_path), DAY0, day1).rows
    assert _totals(rows) == _expected(DAY0)
    alerts = pd.DataFrame({"usage_date": [day1], "service": ["Amazon EKS"],
                           "account_id": [B], "region": ["us-west-2"]})
    (cause,) = focus_root_causes(str(tmp_path), alerts)
    top = rc.from_json(cause)[0]
    # The allocated shares keep the origin charge's resource: the drill-down sees the 10.0.
    assert (top["usage_type"], top["resource_id"], top["actual"], top["baseline"]) == (
        ROUTE, "arn:aws:eks:cluster/prod", 10.0, 0.0)


# --------------------------------------------------------------------------- mixed versions


def test_a_folder_mixing_versions(tmp_path: Path) -> None:
    """A provider that upgraded its export: 1.0 CSV for January, 1.2 Parquet for February,
    1.4 Parquet for March, read in one range; each file is read by its own columns."""
    days = {"1.0": D(2026, 1, 30), "1.2": D(2026, 2, 27), "1.4": D(2026, 3, 1)}
    _write(tmp_path / "billing_period=2026-01" / "part-0.csv", FOCUS_1_0, days["1.0"])
    _write(tmp_path / "billing_period=2026-02" / "part-0.parquet", FOCUS_1_2, days["1.2"])
    _write(tmp_path / "billing_period=2026-03" / "part-0.parquet", FOCUS_1_4, days["1.4"])
    result = read_cost_files(str(tmp_path), D(2026, 1, 30), D(2026, 3, 2))
    expected = sorted(
        (row for day0 in days.values() for row in _expected(day0)),
        key=lambda r: (r[0], r[1], r[2], r[3]),
    )
    assert _totals(result.rows) == expected
    assert result.metadata["focus_files_read"] == 3
    assert result.metadata["focus_excluded_cost"] == {
        category: 3 * cost for category, cost in EXCLUDED.items()}
