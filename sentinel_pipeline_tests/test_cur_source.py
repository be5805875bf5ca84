"""The `cur` source on CUR 2.0 exports laid out as AWS Data Exports writes them (local and S3)."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from pathlib import Path

import boto3
import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sentinel_pipeline.cli import failure_messages
from sentinel_pipeline.defs.resources import CostSourceResource
from sentinel_pipeline.errors import SourceError
from sentinel_pipeline.sources import root_causes as rc
from sentinel_pipeline.sources.cur import estimated_days, read_cur
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests import cur_fakes as fake
from sentinel_pipeline_tests.conftest import run_days
from sentinel_pipeline_tests.cur_fakes import Item

D = date
JAN = "2025-01"
OLD = D(2026, 1, 1)  # a "today" long after January 2025 closed: nothing estimated


def _series(df: pd.DataFrame, service: str, region: str = "us-east-1") -> dict[date, float]:
    part = df[(df["service"] == service) & (df["region"] == region)]
    return {d: round(float(c), 6) for d, c in zip(part["usage_date"], part["cost"], strict=True)}


def _january(tmp_path: Path) -> Path:
    items = [
        Item(D(2025, 1, 1), 10.0), Item(D(2025, 1, 1), 5.0, usage_type="USE1-EBS:VolumeUsage"),
        Item(D(2025, 1, 1), 1.5, hour=23),  # late hours stay on their UTC day
        Item(D(2025, 1, 2), 12.0),
        Item(D(2025, 1, 1), 3.0, service="AmazonS3", region=None),  # no region -> global
        Item(D(2025, 1, 1), 4.0, service="AmazonS3", region="", account="444455556666"),
        Item(D(2025, 1, 1), -6.0, item_type="Credit"),
        Item(D(2025, 1, 1), 2.25, item_type="Tax"),
        Item(D(2025, 1, 2), -1.0, item_type="Refund"),
        Item(D(2024, 12, 31), 99.0),  # outside the range asked for
        Item(D(2025, 1, 3), 99.0),
    ]
    return fake.write_export(tmp_path, {fake.data_key(JAN): fake.parquet_bytes(items)})


def test_daily_series_from_a_local_export(tmp_path: Path) -> None:
    path = _january(tmp_path)
    df_result = read_cur(str(path), D(2025, 1, 1), D(2025, 1, 2), today=OLD)
    df = df_result.rows
    assert list(df["source"].unique()) == ["cur"] and not df["estimated"].any()
    assert _series(df, "AmazonEC2") == {D(2025, 1, 1): 16.5, D(2025, 1, 2): 12.0}
    s3 = df[df["service"] == "AmazonS3"].set_index("account_id")
    assert s3.loc["111122223333", "cost"] == 3.0 and s3.loc["444455556666", "cost"] == 4.0
    assert set(s3["region"]) == {"global"}
    meta = df_result.metadata
    assert meta["cur_excluded_cost_by_line_item_type"] == {"Credit": -6.0, "Refund": -1.0,
                                                           "Tax": 2.25}
    assert meta["cur_files_read"] == 1 and meta["cur_billing_periods"] == JAN
    assert meta["cur_line_items_scanned"] == 9 and meta["cur_bytes_scanned"] > 0
    assert meta["cur_cost_measure"] == "unblended"


def test_estimated_while_aws_may_rewrite_the_period(tmp_path: Path) -> None:
    path = _january(tmp_path)
    df = read_cur(str(path), D(2025, 1, 1), D(2025, 1, 2), today=D(2025, 2, 15)).rows
    assert df["estimated"].all()  # previous period, 14 days after it closed
    assert not read_cur(str(path), D(2025, 1, 1), D(2025, 1, 2),
                        today=D(2025, 2, 16)).rows["estimated"].any()
    days = [D(2025, 1, 31), D(2025, 2, 1), D(2025, 3, 1)]
    assert estimated_days(days, D(2025, 2, 10)).tolist() == [True, True, True]
    assert estimated_days(days, D(2025, 3, 10)).tolist() == [False, True, True]
    assert estimated_days(days, D(2025, 3, 16)).tolist() == [False, False, True]


def test_manifest_decides_which_files_are_read(tmp_path: Path) -> None:
    """A delivery in progress (file 2 not yet in the manifest) is not read; without a
    manifest every file is."""
    one = fake.parquet_bytes([Item(D(2025, 1, 5), 10.0)])
    two = fake.parquet_bytes([Item(D(2025, 1, 5), 1000.0)])
    files = {fake.data_key(JAN, 1): one, fake.data_key(JAN, 2): two}
    path = fake.write_export(tmp_path / "with", {**files, fake.manifest_key(JAN):
                             fake.manifest_bytes("s3://billing/exports", JAN, [1])})
    df_result = read_cur(str(path), D(2025, 1, 5), D(2025, 1, 5), today=OLD)
    df = df_result.rows
    assert df["cost"].sum() == 10.0
    assert df_result.metadata["cur_files_not_in_manifest"] == 1
    path = fake.write_export(tmp_path / "without", files)
    df_result = read_cur(str(path), D(2025, 1, 5), D(2025, 1, 5), today=OLD)
    df = df_result.rows
    assert df["cost"].sum() == 1010.0
    assert df_result.metadata["cur_periods_without_manifest"] == JAN
    # A manifest naming a file that is gone: a rewrite is under way, retry later.
    path = fake.write_export(tmp_path / "gone", {fake.data_key(JAN, 1): one, fake.manifest_key(JAN):
                                      fake.manifest_bytes("s3://b/p", JAN, [1, 3])})
    with pytest.raises(SourceError, match="rewriting billing period 2025-01.*rerun"):
        read_cur(str(path), D(2025, 1, 5), D(2025, 1, 5), today=OLD)


def test_cost_measures_follow_the_aws_formulas(tmp_path: Path) -> None:
    day = D(2025, 1, 10)
    items = [
        Item(day, 3.0),  # Usage
        Item(day, 10.0, item_type="SavingsPlanCoveredUsage", extra={
            "savings_plan_savings_plan_effective_cost": 6.0,
            "savings_plan_net_savings_plan_effective_cost": 5.0}),
        Item(day, -10.0, item_type="SavingsPlanNegation"),
        Item(day, 0.0, item_type="DiscountedUsage", extra={
            "reservation_effective_cost": 4.0, "reservation_net_effective_cost": 3.5}),
        Item(day, 100.0, item_type="RIFee", extra={
            "reservation_unused_amortized_upfront_fee_for_billing_period": 1.0,
            "reservation_unused_recurring_fee": 2.0,
            "reservation_net_unused_amortized_upfront_fee_for_billing_period": 0.5,
            "reservation_net_unused_recurring_fee": 1.0}),
        Item(day, 20.0, item_type="SavingsPlanRecurringFee", extra={
            "savings_plan_total_commitment_to_date": 20.0, "savings_plan_used_commitment": 15.0}),
        Item(day, 500.0, item_type="Fee", extra={"reservation_reservation_a_r_n": "arn:aws:ri"}),
    ]
    path = fake.write_export(tmp_path, {fake.data_key(JAN): fake.parquet_bytes(items)})
    every = "Usage,SavingsPlanCoveredUsage,SavingsPlanNegation,DiscountedUsage,RIFee," \
            "SavingsPlanRecurringFee,Fee"

    def total(cost: str, types: str = every) -> float:
        df = read_cur(str(path), day, day, cost=cost, line_item_types=types, today=OLD).rows
        return round(float(df["cost"].sum()), 6)

    assert total("unblended") == 3 + 10 - 10 + 0 + 100 + 20 + 500
    assert total("net_unblended") == round(0.9 * 623, 6)
    # Usage 3 + SP effective 6 + negation 0 + RI effective 4 + unused RI 1+2 + unused SP 5
    # + upfront RI fee 0.
    assert total("amortized") == 21.0
    assert total("net_amortized") == round(0.9 * 3 + 5 + 3.5 + 1.5 + 5, 6)
    # Default types: usage wherever it is billed (SP-covered at its on-demand rate).
    assert total("unblended", "Usage,DiscountedUsage,SavingsPlanCoveredUsage") == 13.0
    assert total("amortized", " usage , discountedusage,SAVINGSPLANCOVEREDUSAGE") == 13.0
    with pytest.raises(SourceError, match="SENTINEL_CUR_COST.*amortized"):
        total("blended")


def _bad(tmp_path: Path, files: dict[str, bytes]) -> str:
    path = fake.write_export(tmp_path, files)
    with pytest.raises(SourceError) as err:
        read_cur(str(path), D(2025, 1, 1), D(2025, 1, 2), today=OLD)
    return str(err.value)


def test_bad_exports_are_clear_errors(tmp_path: Path) -> None:
    items = [Item(D(2025, 1, 1), 1.0)]
    message = _bad(tmp_path / "a", {fake.data_key(JAN): fake.parquet_bytes(
        items, drop=("line_item_unblended_cost",))})
    assert fake.data_key(JAN) in message and "line_item_unblended_cost" in message
    assert "re-create the export" in message
    mixed = [Item(D(2025, 1, 1), 1.0), Item(D(2025, 1, 2), 1.0, currency="EUR")]
    message = _bad(tmp_path / "b", {fake.data_key(JAN): fake.parquet_bytes(mixed)})
    assert "AmazonEC2" in message and "EUR" in message and "USD" in message
    (tmp_path / "c" / fake.EXPORT / "data" / f"BILLING_PERIOD={JAN}").mkdir(parents=True)
    message = _bad(tmp_path / "c", {})
    assert f"BILLING_PERIOD={JAN}" in message and "no Parquet files" in message
    message = _bad(tmp_path / "d", {fake.data_key(JAN).replace(".snappy.parquet", ".csv.gz"):
                                    b"x"})
    assert "Parquet format" in message
    message = _bad(tmp_path / "e", {fake.data_key("2024-12"): fake.parquet_bytes(items)})
    assert "no CUR 2.0 data for billing period 2025-01" in message and "2024-12" in message
    with pytest.raises(SourceError, match="does not exist"):
        read_cur(str(tmp_path / "nowhere"), D(2025, 1, 1), D(2025, 1, 1))
    two = {fake.data_key(JAN): fake.parquet_bytes(items),
           "other/" + fake.data_key(JAN): fake.parquet_bytes(items)}
    with pytest.raises(SourceError, match="holds 2 CUR exports"):
        read_cur(str(fake.write_export(tmp_path / "f", two).parent), D(2025, 1, 1), D(2025, 1, 1))


def _bucket(endpoint: str) -> str:
    name = f"cur-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return name


def _put(endpoint: str, bucket: str, files: dict[str, bytes]) -> None:
    client = boto3.client("s3", endpoint_url=endpoint)
    for key, body in files.items():
        client.put_object(Bucket=bucket, Key=f"exports/{key}", Body=body)


def _history(last: date, days: int) -> list[Item]:
    """Steady EC2 and S3 spend for `days` days up to `last`, then EC2 jumps on `last` from a
    new usage type on one instance."""
    items = []
    for n in range(days):
        day = last - timedelta(days=days - 1 - n)
        wiggle = 1.0 + 0.02 * ((n * 7) % 5 - 2)
        items += [Item(day, 80.0 * wiggle), Item(day, 20.0 * wiggle, usage_type="USE1-EBS"),
                  Item(day, 40.0 * wiggle, service="AmazonS3", usage_type="TimedStorage-ByteHrs",
                       resource="my-bucket")]
    items.append(Item(last, 400.0, usage_type="USE1-DataTransfer-Out-Bytes",
                      resource="i-0spike"))
    return items


def test_pipeline_on_s3_alerts_with_cur_root_causes(
    s3_env: str, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Real job: CUR on s3://, the jump traced to its usage type and resource. The tables are
    in a local folder: a data dir on s3:// is covered by test_storage and test_production."""
    bucket = _bucket(s3_env)
    last = D(2025, 2, 10)
    items = _history(last, 41)  # from 2025-01-01, the first exported period
    jan = [i for i in items if i.day.month == 1]
    feb = [i for i in items if i.day.month == 2]
    url = f"s3://{bucket}/exports"
    _put(s3_env, bucket, {
        fake.data_key(JAN): fake.parquet_bytes(jan),
        fake.data_key("2025-02"): fake.parquet_bytes(feb),
        fake.manifest_key("2025-02"): fake.manifest_bytes(url, "2025-02", [1]),
        # A later delivery still being written: not in the manifest, must not be read.
        fake.data_key("2025-02", 2): fake.parquet_bytes([Item(last, 10_000.0)]),
    })
    monkeypatch.setenv("SENTINEL_SOURCE", "cur")
    monkeypatch.setenv("SENTINEL_SOURCE_PATH", f"{url}/{fake.EXPORT}")
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SLACK_BOT_TOKEN", "")
    run_days(instance, last - timedelta(days=40), last)
    store = TableStore(str(tmp_path / "data"))
    raw = store.read_partition("raw_daily_costs", last)
    assert raw is not None and round(raw["cost"].sum(), 6) == round(
        sum(i.cost for i in feb if i.day == last), 6)
    anomalies = store.read_partition("cost_anomalies", last)
    assert anomalies is not None
    alert = anomalies[anomalies["alert"]]
    assert list(alert["service"]) == ["AmazonEC2"]
    causes = rc.from_json(alert["root_causes"].iloc[0])
    assert causes[0]["usage_type"] == "USE1-DataTransfer-Out-Bytes"
    assert causes[0]["resource_id"] == "i-0spike" and causes[0]["increase"] == 400.0
    event = instance.get_latest_materialization_event(dg.AssetKey("raw_daily_costs"))
    assert event is not None and event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    assert metadata["cur_files_not_in_manifest"].value == 1
    assert metadata["cur_billing_periods"].value == "2025-01, 2025-02"


def test_root_causes_never_fail_the_run(tmp_path: Path) -> None:
    """A drill-down that cannot read its files leaves root_causes empty instead of failing."""
    anomalies = pd.DataFrame({"usage_date": [D(2025, 1, 2)], "service": ["AmazonEC2"],
                              "account_id": ["111122223333"], "region": ["us-east-1"]})
    gone = CostSourceResource(source="cur", source_path=str(tmp_path / "gone"))
    assert gone.root_causes(anomalies).causes == [""]
    path = _january(tmp_path)
    found = CostSourceResource(source="cur", source_path=str(path)).root_causes(anomalies).causes
    causes = rc.from_json(found[0])
    assert causes[0]["usage_type"] == "USE1-BoxUsage:m5.large" and causes[0]["actual"] == 12.0


def test_zoned_timestamps_are_utc_days(tmp_path: Path) -> None:
    """Timestamps stored with a time zone are instants: 23:30 UTC stays on its UTC day."""
    table = fake.table([Item(D(2025, 1, 1), 2.0, hour=23), Item(D(2025, 1, 2), 3.0, hour=0)])
    zoned = pa.timestamp("us", "UTC")
    index = table.schema.get_field_index("line_item_usage_start_date")
    table = table.set_column(index, pa.field("line_item_usage_start_date", zoned),
                             table.column(index).cast(zoned))
    target = tmp_path / fake.data_key(JAN)
    target.parent.mkdir(parents=True)
    pq.write_table(table, target)
    df = read_cur(str(tmp_path / fake.EXPORT), D(2025, 1, 1), D(2025, 1, 2), today=OLD).rows
    assert _series(df, "AmazonEC2") == {D(2025, 1, 1): 2.0, D(2025, 1, 2): 3.0}


def test_bad_input_fails_the_run_and_writes_nothing(
    tmp_path: Path, sentinel_env: Path, instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mixed = [Item(D(2025, 1, 1), 1.0), Item(D(2025, 1, 1), 1.0, currency="EUR")]
    path = fake.write_export(tmp_path / "cur", {fake.data_key(JAN): fake.parquet_bytes(mixed)})
    monkeypatch.setenv("SENTINEL_SOURCE", "cur")
    monkeypatch.setenv("SENTINEL_SOURCE_PATH", str(path))
    result = run_days(instance, D(2025, 1, 1), D(2025, 1, 1), raise_on_error=False)
    assert not result.success
    assert "more than one currency" in json.dumps(failure_messages(result))
    assert not (sentinel_env / "raw_daily_costs").exists()


def test_doctor_checks_the_export(
    tmp_path: Path, sentinel_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel_pipeline.doctor import run_checks

    path = _january(tmp_path)
    monkeypatch.setenv("SENTINEL_SOURCE", "cur")
    monkeypatch.setenv("SENTINEL_SOURCE_PATH", str(path))
    source = [c for c in run_checks() if "CUR" in c[1] or "cur" in c[1]]
    assert source and source[0][0] and "2025-01 to 2025-01" in source[0][1]
    monkeypatch.setenv("SENTINEL_SOURCE_PATH", str(tmp_path / "missing"))
    assert any(not ok and "does not exist" in text for ok, text in run_checks())
    monkeypatch.setenv("SENTINEL_SOURCE_PATH", str(path))
    monkeypatch.setenv("SENTINEL_CUR_COST", "blended")
    assert any(not ok and "SENTINEL_CUR_COST" in text for ok, text in run_checks())
