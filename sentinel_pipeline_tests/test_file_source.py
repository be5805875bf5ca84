"""Tests of the `focus` file source: FOCUS / Sentinel-record files aggregated to daily series.

Every file is generated in tmp_path (or a moto S3 server) and every expected total is computed
by hand from the rows written, so a failure points at the reader, not at fixture data.
"""

from __future__ import annotations

import datetime as dt
import errno
import gzip
import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from sentinel_pipeline import schema
from sentinel_pipeline.errors import SourceError
from sentinel_pipeline.sources import focus
from sentinel_pipeline.sources.focus import read_cost_files

D = dt.date
UTC = dt.UTC
ACCOUNT = "012345678901"  # leading zero: must survive as text
FOCUS_HEADER = [
    "ChargePeriodStart",
    "ServiceName",
    "SubAccountId",
    "RegionId",
    "BilledCost",
    "BillingCurrency",
    "ChargeCategory",
]


def _write_parquet(path: Path, columns: dict[str, pa.Array | list[Any]]) -> Path:
    """Write one Parquet file, creating its (Hive-style) folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    """CSV text as exports write it: header line, then one line per row, no quoting needed."""
    return "\n".join(",".join(r) for r in [header, *rows]) + "\n"


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """Write CSV, gzip-compressed when the name ends in .gz or .gzip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _csv_text(header, rows).encode()
    if path.name.endswith((".gz", ".gzip")):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def _focus_row(
    when: str,
    cost: str,
    service: str = "Amazon EC2",
    region: str = "us-east-1",
    category: str = "Usage",
    currency: str = "USD",
    account: str = ACCOUNT,
) -> list[str]:
    """One FOCUS CSV row in FOCUS_HEADER order."""
    return [when, service, account, region, cost, currency, category]


def _records(df: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Output rows as plain tuples (cost rounded) for exact comparison."""
    return [
        (r.usage_date, r.service, r.account_id, r.region, round(r.cost, 6), r.currency)
        for r in df.itertuples()
    ]


# --------------------------------------------------------------------------- reading


def test_focus_parquet_hourly_rows_become_utc_days(tmp_path: Path) -> None:
    """Hourly Parquet rows in billing_period folders (any case) sum per UTC day and series."""
    hours = [
        dt.datetime(2025, 1, 30, 23, tzinfo=UTC),  # before the range
        dt.datetime(2025, 1, 31, 22, tzinfo=UTC),
        dt.datetime(2025, 1, 31, 23, tzinfo=UTC),
        dt.datetime(2025, 1, 31, 10, tzinfo=UTC),
    ]
    _write_parquet(
        tmp_path / "billing_period=2025-01" / "part-0.parquet",
        {
            "ChargePeriodStart": pa.array(hours, pa.timestamp("us", tz="UTC")),
            "ServiceName": ["Amazon EC2", "Amazon EC2", "Amazon EC2", "Amazon S3"],
            "SubAccountId": [ACCOUNT] * 4,
            "RegionId": ["us-east-1", "us-east-1", "us-east-1", "us-west-2"],
            "BilledCost": [100.0, 1.25, 2.5, 0.5],
            "BillingCurrency": ["USD"] * 4,
            "ChargeCategory": ["Usage"] * 4,
            "ResourceId": ["i-1", "i-1", "i-2", "bucket"],  # not needed: not read
        },
    )
    # Naive Parquet timestamps mean UTC; 2025-02-02 is after the range.
    _write_parquet(
        tmp_path / "BILLING_PERIOD=2025-02" / "part-0.parquet",
        {
            "ChargePeriodStart": pa.array(
                [dt.datetime(2025, 2, 1, 0), dt.datetime(2025, 2, 1, 1), dt.datetime(2025, 2, 2)],
                pa.timestamp("ms"),
            ),
            "ServiceName": ["Amazon EC2"] * 3,
            "SubAccountId": [ACCOUNT] * 3,
            "RegionId": ["us-east-1"] * 3,
            "BilledCost": [4.0, 0.25, 50.0],
            "BillingCurrency": ["USD"] * 3,
            "ChargeCategory": ["Usage"] * 3,
        },
    )
    df_result = read_cost_files(str(tmp_path), D(2025, 1, 31), D(2025, 2, 1))
    df = df_result.rows
    assert list(df.columns) == schema.RAW_COLUMNS
    assert _records(df) == [
        (D(2025, 1, 31), "Amazon EC2", ACCOUNT, "us-east-1", 3.75, "USD"),
        (D(2025, 1, 31), "Amazon S3", ACCOUNT, "us-west-2", 0.5, "USD"),
        (D(2025, 2, 1), "Amazon EC2", ACCOUNT, "us-east-1", 4.25, "USD"),
    ]
    assert df["cost"].dtype == "float64"
    assert df["estimated"].dtype == bool and not df["estimated"].any()
    assert set(df["source"]) == {"focus"}
    assert all(type(d) is dt.date for d in df["usage_date"])
    assert df_result.metadata["focus_files_read"] == 2
    assert df_result.metadata["focus_excluded_cost"] == {}


def test_csv_and_gzip_csv_with_and_without_offsets(tmp_path: Path) -> None:
    """Plain, .csv.gz and .csv.gzip files; an offset time lands on its UTC day."""
    _write_csv(
        tmp_path / "a.csv",
        FOCUS_HEADER,
        [
            _focus_row("2025-03-01T23:30:00-05:00", "10"),  # 04:30 UTC on 03-02
            _focus_row("2025-03-01T23:59:59", "1.5"),  # naive: UTC, stays on 03-01
        ],
    )
    _write_csv(
        tmp_path / "sub" / "b.csv.gz",
        FOCUS_HEADER,
        [
            _focus_row("2025-03-02T00:00:00Z", "2.25"),
            _focus_row("2025-03-01T00:00:00.000Z", "0.5"),
        ],
    )
    _write_csv(
        tmp_path / "sub" / "deeper" / "c.csv.gzip",
        FOCUS_HEADER,
        [_focus_row("2025-03-02 13:00:00", "0.25", service="AWS Lambda", region="eu-west-1")],
    )
    df_result = read_cost_files(str(tmp_path), D(2025, 3, 1), D(2025, 3, 2))
    df = df_result.rows
    assert _records(df) == [
        (D(2025, 3, 1), "Amazon EC2", ACCOUNT, "us-east-1", 2.0, "USD"),
        (D(2025, 3, 2), "AWS Lambda", ACCOUNT, "eu-west-1", 0.25, "USD"),
        (D(2025, 3, 2), "Amazon EC2", ACCOUNT, "us-east-1", 12.25, "USD"),
    ]
    assert df_result.metadata["focus_files_read"] == 3
    only_first_day = read_cost_files(str(tmp_path), D(2025, 3, 1), D(2025, 3, 1)).rows
    assert _records(only_first_day) == [
        (D(2025, 3, 1), "Amazon EC2", ACCOUNT, "us-east-1", 2.0, "USD")
    ]


def test_parquet_timestamps_in_other_zones_and_bigquery_text(tmp_path: Path) -> None:
    """A New York 23:30 Parquet timestamp is the next UTC day; "... UTC" text is UTC."""
    new_york = dt.timezone(dt.timedelta(hours=-5))
    _write_parquet(
        tmp_path / "ny.parquet",
        {
            "ChargePeriodStart": pa.array(
                [dt.datetime(2025, 1, 31, 23, 30, tzinfo=new_york)],
                pa.timestamp("us", tz="America/New_York"),
            ),
            "ServiceName": ["Amazon EC2"],
            "SubAccountId": [ACCOUNT],
            "BilledCost": [2.0],
        },
    )
    _write_csv(
        tmp_path / "gcp.csv",
        ["ChargePeriodStart", "ServiceName", "SubAccountId", "BilledCost"],
        [["2025-02-01 00:00:00 UTC", "Amazon EC2", ACCOUNT, "3"]],
    )
    df = read_cost_files(str(tmp_path), D(2025, 1, 31), D(2025, 2, 1)).rows
    assert _records(df) == [(D(2025, 2, 1), "Amazon EC2", ACCOUNT, "global", 5.0, "USD")]


def test_charge_categories_filter_and_excluded_cost(tmp_path: Path) -> None:
    """Categories match case-insensitively after stripping; excluded totals land in attrs."""
    day = "2025-04-10T05:00:00Z"
    _write_csv(
        tmp_path / "focus.csv",
        FOCUS_HEADER,
        [
            _focus_row(day, "10", category="Usage"),
            _focus_row(day, "5", category=" usage "),
            _focus_row(day, "20", category="PURCHASE"),
            _focus_row(day, "1.5", category="Tax"),
            _focus_row(day, "-4", category="Credit"),
            _focus_row(day, "-3", category="credit"),
            _focus_row(day, "2", category="Adjustment"),
            _focus_row(day, "0.5", category="NULL"),  # no category: kept
            _focus_row("2025-04-11T05:00:00Z", "-100", category="Credit"),  # out of range
        ],
    )
    df_result = read_cost_files(str(tmp_path), D(2025, 4, 10), D(2025, 4, 10))
    df = df_result.rows
    assert _records(df) == [(D(2025, 4, 10), "Amazon EC2", ACCOUNT, "us-east-1", 37.0, "USD")]
    assert df_result.metadata["focus_excluded_cost"] == {"adjustment": 2.0, "credit": -7.0}

    usage_only_result = read_cost_files(
        str(tmp_path), D(2025, 4, 10), D(2025, 4, 10), charge_categories=("Usage",)
    )
    usage_only = usage_only_result.rows
    assert usage_only["cost"].tolist() == [15.5]
    assert usage_only_result.metadata["focus_excluded_cost"] == {
        "adjustment": 2.0,
        "credit": -7.0,
        "purchase": 20.0,
        "tax": 1.5,
    }


def test_without_charge_category_column_all_rows_are_kept(tmp_path: Path) -> None:
    """No ChargeCategory, BillingCurrency or region column: keep all, USD, region global."""
    _write_csv(
        tmp_path / "minimal.csv",
        ["ChargePeriodStart", "ServiceName", "SubAccountId", "BilledCost"],
        [["2025-04-10", "Amazon RDS", ACCOUNT, "3"], ["2025-04-10", "Amazon RDS", ACCOUNT, "-1"]],
    )
    df_result = read_cost_files(str(tmp_path), D(2025, 4, 10), D(2025, 4, 10))
    df = df_result.rows
    assert _records(df) == [(D(2025, 4, 10), "Amazon RDS", ACCOUNT, "global", 2.0, "USD")]
    assert df_result.metadata["focus_excluded_cost"] == {}


def test_null_empty_and_missing_regions_become_global(tmp_path: Path) -> None:
    """ "NULL", empty and null RegionId, FOCUS 0.5 `Region`, and no region column at all."""
    when = "2025-05-01T00:00:00Z"
    _write_csv(
        tmp_path / "regionid.csv",
        FOCUS_HEADER,
        [_focus_row(when, "1", region="NULL"), _focus_row(when, "2", region="")],
    )
    _write_parquet(
        tmp_path / "region_null.parquet",
        {
            "ChargePeriodStart": [when],
            "ServiceName": ["Amazon EC2"],
            "SubAccountId": [ACCOUNT],
            "RegionId": pa.array([None], pa.string()),
            "BilledCost": [4.0],
        },
    )
    _write_csv(
        tmp_path / "focus05.csv",
        ["ChargePeriodStart", "ServiceName", "SubAccountId", "Region", "BilledCost"],
        [[when, "Amazon EC2", ACCOUNT, "eu-central-1", "8"]],
    )
    _write_csv(
        tmp_path / "noregion.csv",
        ["ChargePeriodStart", "ServiceName", "SubAccountId", "BilledCost"],
        [[when, "Amazon EC2", ACCOUNT, "16"]],
    )
    df = read_cost_files(str(tmp_path), D(2025, 5, 1), D(2025, 5, 1)).rows
    assert _records(df) == [
        (D(2025, 5, 1), "Amazon EC2", ACCOUNT, "eu-central-1", 8.0, "USD"),
        (D(2025, 5, 1), "Amazon EC2", ACCOUNT, "global", 23.0, "USD"),
    ]


def test_sentinel_records_csv_and_parquet(tmp_path: Path) -> None:
    """service/cost/region/timestamp/account records map to the same daily series."""
    _write_csv(
        tmp_path / "records.csv",
        ["service", "cost", "region", "timestamp", "account"],
        [
            ["Compute", "1.5", "us-east-1", "2025-06-01T08:00:00Z", "acct-1"],
            ["Compute", "2.5", "us-east-1", "2025-06-01T20:00:00+02:00", "acct-1"],
            ["Storage", "4", "", "2025-06-02", "acct-2"],
        ],
    )
    _write_parquet(
        tmp_path / "records.parquet",
        {
            "service": ["Compute"],
            "cost": [10.0],
            "region": ["us-east-1"],
            "timestamp": pa.array([dt.datetime(2025, 6, 2, 3)], pa.timestamp("s")),
            "account": ["acct-3"],
            "currency": ["eur"],
        },
    )
    df = read_cost_files(str(tmp_path), D(2025, 6, 1), D(2025, 6, 2)).rows
    assert _records(df) == [
        (D(2025, 6, 1), "Compute", "acct-1", "us-east-1", 4.0, "USD"),
        (D(2025, 6, 2), "Compute", "acct-3", "us-east-1", 10.0, "EUR"),
        (D(2025, 6, 2), "Storage", "acct-2", "global", 4.0, "USD"),
    ]
    assert set(df["source"]) == {"focus"}


def test_billing_periods_outside_range_are_not_opened(tmp_path: Path) -> None:
    """Corrupt files in other periods, manifests and hidden files never cause an error."""
    good = {
        "ChargePeriodStart": ["2025-01-15T00:00:00Z"],
        "ServiceName": ["Amazon EC2"],
        "SubAccountId": [ACCOUNT],
        "BilledCost": [7.0],
    }
    _write_parquet(tmp_path / "billing_period=2025-01" / "part-0.parquet", good)
    corrupt = tmp_path / "billing_period=2024-12" / "part-0.parquet"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"this is not parquet")
    (tmp_path / "BILLING_PERIOD=2025-02").mkdir()
    (tmp_path / "BILLING_PERIOD=2025-02" / "bad.csv").write_text("no,such,columns\n1,2,3\n")
    (tmp_path / "billing_period=2025-01" / "Manifest.json").write_text("{not json")
    (tmp_path / "billing_period=2025-01" / "_SUCCESS").write_text("")
    (tmp_path / "billing_period=2025-01" / ".part-0.parquet.crc").write_bytes(b"\x00")
    (tmp_path / "_temporary").mkdir()
    (tmp_path / "_temporary" / "part-9.parquet").write_bytes(b"half written")

    df_result = read_cost_files(str(tmp_path), D(2025, 1, 1), D(2025, 1, 31))
    df = df_result.rows
    assert df["cost"].tolist() == [7.0]
    assert df_result.metadata["focus_files_read"] == 1

    # The same corrupt file fails once its period is asked for: pruning is what skipped it.
    with pytest.raises(SourceError) as info:
        read_cost_files(str(tmp_path), D(2024, 12, 31), D(2025, 1, 1))
    assert str(corrupt) in str(info.value)
    assert "Parquet" in str(info.value)


def test_repeated_rows_are_summed(tmp_path: Path) -> None:
    """Identical line items (several resources per series and hour) add up, not collapse."""
    row = _focus_row("2025-07-04T12:00:00Z", "1.1")
    _write_csv(tmp_path / "dupes.csv", FOCUS_HEADER, [row, row, row])
    df = read_cost_files(str(tmp_path), D(2025, 7, 4), D(2025, 7, 4)).rows
    assert df["cost"].round(9).tolist() == [3.3]


def test_cost_column_is_selectable_and_decimals_are_read(tmp_path: Path) -> None:
    """EffectiveCost (any case) instead of BilledCost; Parquet decimals become float64."""
    _write_parquet(
        tmp_path / "costs.parquet",
        {
            "ChargePeriodStart": pa.array(
                [dt.datetime(2025, 8, 1, 1, tzinfo=UTC)] * 2, pa.timestamp("ns", tz="UTC")
            ),
            "ServiceName": ["Amazon EC2"] * 2,
            "SubAccountId": [ACCOUNT] * 2,
            "BilledCost": pa.array([Decimal("10.00"), Decimal("5.00")], pa.decimal128(18, 2)),
            "EffectiveCost": pa.array([Decimal("7.50"), None], pa.decimal128(18, 2)),
        },
    )
    billed = read_cost_files(str(tmp_path), D(2025, 8, 1), D(2025, 8, 1)).rows
    effective = read_cost_files(
        str(tmp_path), D(2025, 8, 1), D(2025, 8, 1), cost_column="effectivecost"
    ).rows
    assert billed["cost"].tolist() == [15.0]
    assert effective["cost"].tolist() == [7.5]


def test_empty_range_gives_empty_frame(tmp_path: Path) -> None:
    """Files exist but hold no row in the range: an empty, well-typed frame, not an error."""
    _write_csv(tmp_path / "a.csv", FOCUS_HEADER, [_focus_row("2025-01-01T00:00:00Z", "1")])
    df_result = read_cost_files(str(tmp_path), D(2026, 1, 1), D(2026, 1, 31))
    df = df_result.rows
    assert df.empty
    assert list(df.columns) == schema.RAW_COLUMNS
    assert df["cost"].dtype == "float64"
    meta = df_result.metadata
    assert (meta["focus_excluded_cost"], meta["focus_files_read"]) == ({}, 1)


def test_a_single_file_path_is_read(tmp_path: Path) -> None:
    """SENTINEL_SOURCE_PATH may point at one export file."""
    path = _write_csv(tmp_path / "a.csv", FOCUS_HEADER, [_focus_row("2025-01-01", "1")])
    df = read_cost_files(str(path), D(2025, 1, 1), D(2025, 1, 1)).rows
    assert df["cost"].tolist() == [1.0]


# --------------------------------------------------------------------------- bad input


def _error(path: Path | str, start: dt.date, end: dt.date, **kwargs: Any) -> str:
    """The SourceError message read_cost_files raises for this input."""
    with pytest.raises(SourceError) as info:
        read_cost_files(str(path), start, end, **kwargs)
    return str(info.value)


def test_missing_path(tmp_path: Path) -> None:
    """A path that does not exist names itself and the setting to fix."""
    message = _error(tmp_path / "nowhere", D(2025, 1, 1), D(2025, 1, 1))
    assert str(tmp_path / "nowhere") in message
    assert "does not exist" in message
    assert "SENTINEL_SOURCE_PATH" in message and "s3://" in message


def test_folder_without_readable_files(tmp_path: Path) -> None:
    """Only a manifest: say which extensions are read."""
    (tmp_path / "Manifest.json").write_text("{}")
    message = _error(tmp_path, D(2025, 1, 1), D(2025, 1, 1))
    assert str(tmp_path) in message
    for ext in ("*.parquet", "*.csv", "*.csv.gz", "*.csv.gzip"):
        assert ext in message
    assert "Manifest.json" in message


def test_missing_focus_column(tmp_path: Path) -> None:
    """Names the file, the missing column, the columns found and both accepted formats."""
    path = _write_csv(
        tmp_path / "billing_period=2025-01" / "x.csv",
        ["ChargePeriodStart", "ServiceName", "BilledCost"],
        [["2025-01-01", "Amazon EC2", "1"]],
    )
    message = _error(tmp_path, D(2025, 1, 1), D(2025, 1, 1))
    assert str(path) in message
    assert "missing required column(s) SubAccountId" in message
    assert "columns found: ChargePeriodStart, ServiceName, BilledCost" in message
    assert "FOCUS" in message and "Sentinel records" in message


def test_missing_cost_column_suggests_present_ones(tmp_path: Path) -> None:
    """Asking for BilledCost from a file with only EffectiveCost points at cost_column."""
    _write_parquet(
        tmp_path / "x.parquet",
        {
            "ChargePeriodStart": ["2025-01-01"],
            "ServiceName": ["Amazon EC2"],
            "SubAccountId": [ACCOUNT],
            "EffectiveCost": [1.0],
        },
    )
    message = _error(tmp_path, D(2025, 1, 1), D(2025, 1, 1))
    assert "missing required column(s) BilledCost" in message
    assert "cost columns present: EffectiveCost" in message


def test_unrecognised_file_lists_both_formats(tmp_path: Path) -> None:
    """A CSV that is neither FOCUS nor records names every missing record column."""
    path = _write_csv(tmp_path / "other.csv", ["service", "amount"], [["EC2", "1"]])
    message = _error(tmp_path, D(2025, 1, 1), D(2025, 1, 1))
    assert str(path) in message
    assert "timestamp, account, cost" in message
    assert "columns found: service, amount" in message


def test_unparsable_date_names_file_column_value_and_row(tmp_path: Path) -> None:
    """The first bad date, its data row and CSV line are in the message."""
    path = _write_csv(
        tmp_path / "dates.csv",
        FOCUS_HEADER,
        [
            _focus_row("2025-01-01T00:00:00Z", "1"),
            _focus_row("2025-01-01T01:00:00Z", "1"),
            _focus_row("31/01/2025 10:00", "1"),
            _focus_row("yesterday", "1"),
        ],
    )
    message = _error(tmp_path, D(2025, 1, 1), D(2025, 1, 1))
    assert str(path) in message
    assert "column ChargePeriodStart" in message
    assert "'31/01/2025 10:00'" in message
    assert "data row 3 (line 4)" in message
    assert "ISO 8601" in message


def test_empty_date_in_parquet(tmp_path: Path) -> None:
    """A null Parquet timestamp cannot be placed on a day either."""
    path = _write_parquet(
        tmp_path / "x.parquet",
        {
            "ChargePeriodStart": pa.array([dt.datetime(2025, 1, 1), None], pa.timestamp("us")),
            "ServiceName": ["Amazon EC2"] * 2,
            "SubAccountId": [ACCOUNT] * 2,
            "BilledCost": [1.0, 2.0],
        },
    )
    message = _error(tmp_path, D(2025, 1, 1), D(2025, 1, 1))
    assert str(path) in message and "an empty value" in message and "data row 2" in message


def test_unparsable_cost_names_file_column_value_and_row(tmp_path: Path) -> None:
    """Text that is not a number fails with the value and its row."""
    path = _write_csv(
        tmp_path / "costs.csv.gz",
        FOCUS_HEADER,
        [_focus_row("2025-01-01T00:00:00Z", "1.5"), _focus_row("2025-01-01T01:00:00Z", "$2.00")],
    )
    message = _error(tmp_path, D(2025, 1, 1), D(2025, 1, 1))
    assert str(path) in message
    assert "column BilledCost" in message
    assert "'$2.00'" in message
    assert "data row 2 (line 3)" in message
    assert "not a number" in message


def test_two_currencies_for_one_series(tmp_path: Path) -> None:
    """Names the series, both currencies and their files, and how to fix it."""
    usd = _write_csv(
        tmp_path / "usd.csv", FOCUS_HEADER, [_focus_row("2025-01-01", "1", currency="USD")]
    )
    eur = _write_csv(
        tmp_path / "eur.csv", FOCUS_HEADER, [_focus_row("2025-01-02", "1", currency="EUR")]
    )
    message = _error(tmp_path, D(2025, 1, 1), D(2025, 1, 2))
    assert "service='Amazon EC2'" in message
    assert f"account_id='{ACCOUNT}'" in message
    assert "region='us-east-1'" in message
    assert f"EUR (in {eur})" in message and f"USD (in {usd})" in message
    assert "one billing currency" in message
    # One currency per series is fine even if series differ.
    assert len(read_cost_files(str(tmp_path), D(2025, 1, 1), D(2025, 1, 1)).rows) == 1


def test_unknown_cost_column_is_rejected_before_reading(tmp_path: Path) -> None:
    """Checked first, so even a missing path reports the configuration problem."""
    message = _error(tmp_path / "nowhere", D(2025, 1, 1), D(2025, 1, 1), cost_column="Cost")
    assert "'Cost'" in message
    for name in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
        assert name in message


def test_start_after_end(tmp_path: Path) -> None:
    """An inverted range is a caller mistake, reported as such."""
    assert "after end" in _error(tmp_path, D(2025, 1, 2), D(2025, 1, 1))


class _DenyingHandler(pafs.FileSystemHandler):
    """The local filesystem, except that the OS refuses to open or list chosen paths.

    Tests run as root, where chmod 000 does not stop reads, so the denial is raised where the
    OS would raise it: below pyarrow's filesystem API, through which the source reads.
    """

    def __init__(self, denied: set[str]) -> None:
        self.local = pafs.LocalFileSystem()
        self.denied = denied

    def _check(self, path: str) -> None:
        if path in self.denied:
            raise PermissionError(errno.EACCES, "Permission denied", path)

    def get_type_name(self) -> str:
        return "denying-local"

    def normalize_path(self, path: str) -> str:
        return path

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        self._check(selector.base_dir)
        return self.local.get_file_info(selector)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        self._check(path)
        return self.local.open_input_stream(path, compression=None)

    def open_input_file(self, path: str) -> pa.NativeFile:
        self._check(path)
        return self.local.open_input_file(path)

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("read-only test filesystem")

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = _read_only
    delete_file = move = copy_file = open_output_stream = open_append_stream = _read_only


@pytest.fixture
def deny(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Paths added to the yielded set raise PermissionError when the source opens them."""
    denied: set[str] = set()
    fs = pafs.PyFileSystem(_DenyingHandler(denied))
    monkeypatch.setattr(
        focus, "open_filesystem", lambda path: (fs, str(Path(path).absolute()), "")
    )
    yield denied


@pytest.mark.parametrize("name", ["x.parquet", "x.csv", "x.csv.gz"])
def test_permission_denied_reading_a_file(tmp_path: Path, deny: set[str], name: str) -> None:
    """Names the unreadable file and says to fix permissions; no partial result."""
    _write_csv(tmp_path / "ok.csv", FOCUS_HEADER, [_focus_row("2025-01-01", "1")])
    path = tmp_path / name
    if name.endswith(".parquet"):
        _write_parquet(
            path,
            {
                "ChargePeriodStart": ["2025-01-01"],
                "ServiceName": ["Amazon EC2"],
                "SubAccountId": [ACCOUNT],
                "RegionId": ["us-east-1"],
                "BilledCost": [1.0],
            },
        )
    else:
        _write_csv(path, FOCUS_HEADER, [_focus_row("2025-01-01", "1")])
    deny.add(str(path))
    message = _error(tmp_path, D(2025, 1, 1), D(2025, 1, 1))
    assert f"permission denied reading {path}" in message
    assert "fix permissions" in message
    deny.clear()
    rows = read_cost_files(str(tmp_path), D(2025, 1, 1), D(2025, 1, 1)).rows
    assert rows["cost"].tolist() == [2.0]


def test_permission_denied_listing_the_folder(tmp_path: Path, deny: set[str]) -> None:
    """An unlistable folder is reported the same way."""
    _write_csv(tmp_path / "ok.csv", FOCUS_HEADER, [_focus_row("2025-01-01", "1")])
    deny.add(str(tmp_path))
    message = _error(tmp_path, D(2025, 1, 1), D(2025, 1, 1))
    assert f"permission denied reading {tmp_path}" in message


# --------------------------------------------------------------------------- S3


def test_s3_prefix_with_endpoint_from_environment(s3_env: str) -> None:
    """s3:// prefixes are listed, pruned and read through AWS_ENDPOINT_URL_S3."""
    import boto3

    s3_endpoint = s3_env
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="billing")
    buffer = io.BytesIO()
    pq.write_table(
        pa.table(
            {
                "ChargePeriodStart": ["2025-01-31T23:00:00Z", "2025-01-31T22:00:00Z"],
                "ServiceName": ["Amazon EC2"] * 2,
                "SubAccountId": [ACCOUNT] * 2,
                "RegionId": ["us-east-1"] * 2,
                "BilledCost": [1.5, 2.0],
                "ChargeCategory": ["Usage", "Credit"],
            }
        ),
        buffer,
    )
    prefix = "focus/sentinel/data"
    client.put_object(
        Bucket="billing",
        Key=f"{prefix}/BILLING_PERIOD=2025-01/part-0.parquet",
        Body=buffer.getvalue(),
    )
    client.put_object(
        Bucket="billing",
        Key=f"{prefix}/BILLING_PERIOD=2025-01/part-1.csv.gz",
        Body=gzip.compress(
            _csv_text(FOCUS_HEADER, [_focus_row("2025-01-31T05:00:00Z", "0.25")]).encode()
        ),
    )
    client.put_object(
        Bucket="billing", Key=f"{prefix}/BILLING_PERIOD=2024-12/part-0.parquet", Body=b"corrupt"
    )
    client.put_object(Bucket="billing", Key=f"{prefix}/Manifest.json", Body=b"{}")

    df_result = read_cost_files(f"s3://billing/{prefix}", D(2025, 1, 31), D(2025, 1, 31))
    df = df_result.rows
    assert _records(df) == [(D(2025, 1, 31), "Amazon EC2", ACCOUNT, "us-east-1", 1.75, "USD")]
    meta = df_result.metadata
    assert (meta["focus_excluded_cost"], meta["focus_files_read"]) == ({"credit": 2.0}, 2)

    message = _error(f"s3://billing/{prefix}", D(2024, 12, 1), D(2024, 12, 1))
    assert f"s3://billing/{prefix}/BILLING_PERIOD=2024-12/part-0.parquet" in message

    message = _error("s3://billing/nothing-here", D(2025, 1, 1), D(2025, 1, 1))
    assert "s3://billing/nothing-here" in message and "does not exist" in message
