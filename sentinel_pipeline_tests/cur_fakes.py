"""CUR 2.0 exports written the way AWS Data Exports lays them out, for the cur source tests."""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

EXPORT = "sentinel-cur"

# The CUR 2.0 columns the source reads, typed as AWS writes them, plus a few it must ignore.
COLUMN_TYPES: dict[str, pa.DataType] = {
    "bill_billing_period_start_date": pa.timestamp("ms"),
    "identity_line_item_id": pa.string(),
    "line_item_usage_start_date": pa.timestamp("ms"),
    "line_item_usage_account_id": pa.string(),
    "line_item_product_code": pa.string(),
    "line_item_line_item_type": pa.string(),
    "line_item_usage_type": pa.string(),
    "line_item_resource_id": pa.string(),
    "line_item_currency_code": pa.string(),
    "line_item_unblended_cost": pa.float64(),
    "line_item_net_unblended_cost": pa.float64(),
    "product_region_code": pa.string(),
    "product": pa.map_(pa.string(), pa.string()),
    "resource_tags": pa.map_(pa.string(), pa.string()),
    "cost_category": pa.map_(pa.string(), pa.string()),
    "savings_plan_savings_plan_effective_cost": pa.float64(),
    "savings_plan_net_savings_plan_effective_cost": pa.float64(),
    "savings_plan_total_commitment_to_date": pa.float64(),
    "savings_plan_used_commitment": pa.float64(),
    "reservation_effective_cost": pa.float64(),
    "reservation_net_effective_cost": pa.float64(),
    "reservation_unused_amortized_upfront_fee_for_billing_period": pa.float64(),
    "reservation_net_unused_amortized_upfront_fee_for_billing_period": pa.float64(),
    "reservation_unused_recurring_fee": pa.float64(),
    "reservation_net_unused_recurring_fee": pa.float64(),
    "reservation_reservation_a_r_n": pa.string(),
}


@dataclass
class Item:
    """One line item; costs default to the unblended cost as on a plain Usage line."""

    day: dt.date
    cost: float
    service: str = "AmazonEC2"
    account: str = "111122223333"
    region: str | None = "us-east-1"
    item_type: str = "Usage"
    usage_type: str = "USE1-BoxUsage:m5.large"
    resource: str | None = "i-0abc"
    currency: str = "USD"
    hour: int = 10
    extra: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] | None = None  # resource_tags as AWS names them: user_team, aws_...
    categories: dict[str, str] | None = None  # cost_category: name -> value

    def row(self) -> dict[str, Any]:
        start = dt.datetime(self.day.year, self.day.month, self.day.day, self.hour)
        row: dict[str, Any] = {c: None for c in COLUMN_TYPES}
        row.update({
            "bill_billing_period_start_date": dt.datetime(self.day.year, self.day.month, 1),
            "identity_line_item_id": f"id-{self.day}-{self.usage_type}",
            "line_item_usage_start_date": start,
            "line_item_usage_account_id": self.account,
            "line_item_product_code": self.service,
            "line_item_line_item_type": self.item_type,
            "line_item_usage_type": self.usage_type,
            "line_item_resource_id": self.resource,
            "line_item_currency_code": self.currency,
            "line_item_unblended_cost": self.cost,
            "line_item_net_unblended_cost": round(self.cost * 0.9, 10),
            "product_region_code": self.region,
            "product": [("product_name", self.service)],
            "resource_tags": None if self.tags is None else list(self.tags.items()),
            "cost_category": None if self.categories is None else list(self.categories.items()),
        })
        row.update(self.extra)
        return row


def table(items: list[Item], drop: tuple[str, ...] = ()) -> pa.Table:
    rows = [i.row() for i in items]
    columns = {c: pa.array([r[c] for r in rows], t) for c, t in COLUMN_TYPES.items()
               if c not in drop}
    return pa.table(columns)


def parquet_bytes(items: list[Item], drop: tuple[str, ...] = ()) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table(items, drop), sink, compression="snappy")
    return sink.getvalue()


def write_export(root: Path, files: dict[str, bytes]) -> Path:
    """``files`` (key -> bytes) written under ``root``; the export's folder."""
    for key, body in files.items():
        target = root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    return root / EXPORT


def data_key(period: str, number: int = 1) -> str:
    return f"{EXPORT}/data/BILLING_PERIOD={period}/{EXPORT}-{number:05d}.snappy.parquet"


def manifest_key(period: str) -> str:
    return f"{EXPORT}/metadata/BILLING_PERIOD={period}/{EXPORT}-Manifest.json"


def manifest_bytes(bucket_url: str, period: str, numbers: list[int]) -> bytes:
    """A manifest as AWS writes it: dataFiles are full s3:// URLs of the delivery's files."""
    return json.dumps({
        "executionId": "8c1b2a6e-0000-4000-8000-000000000000",
        "bucket": bucket_url.removeprefix("s3://").split("/", 1)[0],
        "billingPeriod": period,
        "dataFiles": [f"{bucket_url}/{data_key(period, n)}" for n in numbers],
        "columns": [{"name": c, "type": str(t)} for c, t in COLUMN_TYPES.items()],
    }).encode()
