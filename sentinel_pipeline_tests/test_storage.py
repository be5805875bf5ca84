"""Table storage on a local folder and on S3 (a local moto server through the real boto3)."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import boto3
import dagster as dg
import pandas as pd
import pytest

from sentinel_pipeline.errors import StorageError
from sentinel_pipeline.schema import RAW_COLUMNS, conform
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests.conftest import run_days

DAY = date(2025, 3, 1)


def _rows() -> pd.DataFrame:
    return conform(pd.DataFrame({
        "usage_date": [DAY, DAY], "service": ["EC2", "S3"], "account_id": ["1", "1"],
        "region": ["us-east-1", "us-east-1"], "cost": [10.5, 2.25], "currency": ["USD", "USD"],
        "estimated": [False, False], "source": ["demo", "demo"],
    }), RAW_COLUMNS)


def _bucket(endpoint: str) -> str:
    name = f"lake-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return name


@pytest.mark.parametrize("where", ["local", "s3"])
def test_partition_round_trip(where: str, tmp_path: Path, s3_env: str) -> None:
    root = str(tmp_path / "data") if where == "local" else f"s3://{_bucket(s3_env)}/sentinel"
    store = TableStore(root)
    assert store.read_partition("raw_daily_costs", DAY) is None
    path = store.write_partition("raw_daily_costs", DAY, _rows())
    assert path.endswith("raw_daily_costs/date=2025-03-01/data.parquet")
    pd.testing.assert_frame_equal(store.read_partition("raw_daily_costs", DAY), _rows())
    store.write_partition("raw_daily_costs", DAY, _rows().iloc[:1])  # replaced whole
    assert len(store.read_partition("raw_daily_costs", DAY)) == 1
    assert store.partitions("raw_daily_costs") == [DAY]
    store.write_json("_delivery/ledger.json", {"a": 1})
    assert store.read_json("_delivery/ledger.json") == {"a": 1}
    store.check_writable()


def test_an_empty_day_has_the_same_parquet_schema_as_a_full_one(tmp_path: Path) -> None:
    """A quiet day's file must not type its dates as null, or the table is not one dataset."""
    import pyarrow.parquet as pq

    from sentinel_pipeline.schema import ANOMALY_COLUMNS, empty_frame

    store = TableStore(str(tmp_path))
    store.write_partition("raw_daily_costs", DAY, _rows())
    store.write_partition("raw_daily_costs", date(2025, 3, 2), empty_frame(RAW_COLUMNS))
    schemas = [pq.read_schema(p) for p in sorted(tmp_path.glob("raw_daily_costs/*/*.parquet"))]
    assert [f.type for f in schemas[1]] == [f.type for f in schemas[0]]
    path = store.write_partition("cost_anomalies", DAY, empty_frame(ANOMALY_COLUMNS))
    anomaly_schema = pq.read_schema(path)
    assert str(anomaly_schema.field("usage_date").type) == "date32[day]"
    assert str(anomaly_schema.field("anomaly_start").type) == "date32[day]"


def test_missing_bucket_is_a_clear_error(s3_env: str) -> None:
    store = TableStore("s3://no-such-bucket-sentinel/prefix")
    with pytest.raises(StorageError, match="no-such-bucket-sentinel.*bucket exists"):
        store.check_writable()


def test_pipeline_with_the_data_dir_on_s3(
    s3_env: str, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = _bucket(s3_env)
    monkeypatch.setenv("SENTINEL_DATA_DIR", f"s3://{bucket}/sentinel")
    monkeypatch.setenv("SENTINEL_SOURCE", "demo")
    assert run_days(instance, date(2025, 2, 1), date(2025, 2, 3)).success
    keys = {o["Key"] for o in boto3.client("s3", endpoint_url=s3_env).list_objects_v2(
        Bucket=bucket)["Contents"]}
    for table in ("raw_daily_costs", "cost_baselines", "cost_anomalies", "annotated_alerts"):
        for day in ("2025-02-01", "2025-02-02", "2025-02-03"):
            assert f"sentinel/{table}/date={day}/data.parquet" in keys
