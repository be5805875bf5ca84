"""The cur source's DuckDB path against its pyarrow path (the one it falls back to): the same
rows and metadata on exports with several billing periods and manifests, local and on S3; the
same errors, naming the file, on bad input; bit-identical sums from one run to the next."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sentinel_pipeline.errors import SourceError
from sentinel_pipeline.settings import parse_owner_key
from sentinel_pipeline.sources import cur
from sentinel_pipeline.sources.base import SourceResult
from sentinel_pipeline_tests import cur_fakes as fake
from sentinel_pipeline_tests.cur_fakes import Item

D = date
TODAY = D(2025, 3, 5)  # January final, February still estimated
USAGE = "Usage,DiscountedUsage,SavingsPlanCoveredUsage"


def _messy(period: str, seed: int, count: int = 80) -> list[Item]:
    """Line items with the labels an export may carry (padded, empty, "NULL", null, lower
    case), every line item type the cost formulas name, costs in eighths (sums are exact in
    any order, so both paths must agree to the last bit)."""
    rng = np.random.default_rng(seed)
    owners = np.random.default_rng(seed + 1000)  # a stream of its own: the rest is unchanged
    year, month = (int(p) for p in period.split("-"))
    services = ["AmazonEC2", " AmazonEC2", "AmazonS3", "", "NULL", None]
    regions = ["us-east-1", "us-east-1 ", "", "NULL", None]
    types = ["Usage", "DiscountedUsage", "SavingsPlanCoveredUsage", " Usage", "usage", "Credit",
             "Tax", "RIFee", "Fee", "SavingsPlanNegation", "SavingsPlanRecurringFee", None]
    items = []
    for _ in range(count):
        account = str(rng.choice(["111", " 111", "222"]))
        currency = "EUR" if account == "222" else str(rng.choice(["USD", "usd", " USD", ""]))

        def eighths() -> float | None:
            return None if rng.random() < 0.2 else float(rng.integers(-16, 80)) / 8

        items.append(Item(
            D(year, month, int(rng.integers(1, 29))), eighths() or 0.0, account=account,
            region=regions[int(rng.integers(len(regions)))], currency=currency,
            hour=int(rng.integers(0, 24)),
            extra={
                "line_item_product_code": services[int(rng.integers(len(services)))],
                "line_item_line_item_type": types[int(rng.integers(len(types)))],
                "line_item_unblended_cost": eighths(),
                "line_item_net_unblended_cost": eighths(),
                "savings_plan_savings_plan_effective_cost": eighths(),
                "savings_plan_net_savings_plan_effective_cost": eighths(),
                "savings_plan_total_commitment_to_date": eighths(),
                "savings_plan_used_commitment": eighths(),
                "reservation_effective_cost": eighths(),
                "reservation_net_effective_cost": eighths(),
                "reservation_unused_amortized_upfront_fee_for_billing_period": eighths(),
                "reservation_net_unused_amortized_upfront_fee_for_billing_period": eighths(),
                "reservation_unused_recurring_fee": eighths(),
                "reservation_net_unused_recurring_fee": eighths(),
                "reservation_reservation_a_r_n": [None, "", "arn:aws:ri"][int(rng.integers(3))],
            },
            tags=_TAGS[int(owners.integers(len(_TAGS)))],
            categories=_CATEGORIES[int(owners.integers(len(_CATEGORIES)))]))
    return items


# resource_tags and cost_category maps as exports carry them: user tags as user_<key>, the raw
# key, padded and blank values, other tags, none at all.
_TAGS: list[dict[str, str] | None] = [
    None, {}, {"user_team": "a"}, {"user_team": " a "}, {"team": "b"}, {"user_team": ""},
    {"aws_createdBy": "x", "user_team": "c"}, {"aws_createdBy": "x"}]
_CATEGORIES: list[dict[str, str] | None] = [None, {"cc": "finance"}, {"cc": ""}, {"other": "z"}]


def _export_files(bucket_url: str) -> dict[str, bytes]:
    """Two billing periods with manifests, three files each (one without the region column)
    plus a file of February that its manifest does not list."""
    files: dict[str, bytes] = {}
    for seed, period in enumerate(("2025-01", "2025-02")):
        for number in (1, 2, 3, 4):
            drop = ("product_region_code",) if number == 2 else ()
            files[fake.data_key(period, number)] = fake.parquet_bytes(
                _messy(period, seed * 10 + number), drop)
        listed = [1, 2, 3, 4] if period == "2025-01" else [1, 2, 3]
        files[fake.manifest_key(period)] = fake.manifest_bytes(bucket_url, period, listed)
    return files


def _both(monkeypatch: pytest.MonkeyPatch, read: Callable[[], SourceResult]
          ) -> tuple[SourceResult | str, SourceResult | str, bool]:
    """`read` by the DuckDB path (falling back as it would), then by the pyarrow path alone;
    each a result or its error message; and whether the DuckDB path gave the rows."""
    took: list[bool] = []
    duckdb_sums = cur._duckdb_sums

    def spy(*args: Any) -> Any:
        summed = duckdb_sums(*args)
        took.append(summed is not None)
        return summed

    def outcome() -> SourceResult | str:
        try:
            return read()
        except SourceError as err:
            return str(err)

    with monkeypatch.context() as patch:
        patch.setattr(cur, "_duckdb_sums", spy)
        fast = outcome()
    with monkeypatch.context() as patch:
        patch.setattr(cur, "_duckdb_sums", lambda *args: None)
        slow = outcome()
    return fast, slow, all(took) and bool(took)


def _same(fast: SourceResult | str, slow: SourceResult | str) -> None:
    assert not isinstance(fast, str) and not isinstance(slow, str), (fast, slow)
    pd.testing.assert_frame_equal(fast.rows, slow.rows, check_exact=True)
    assert fast.metadata == slow.metadata


@pytest.mark.parametrize("cost", cur.COST_MEASURES)
def test_duckdb_path_gives_the_rows_of_the_pyarrow_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cost: str
) -> None:
    path = fake.write_export(tmp_path, _export_files("s3://billing/exports"))
    for types in (USAGE, "usage,credit,unknown"):  # "unknown": null types counted too
        fast, slow, took = _both(monkeypatch, lambda types=types: cur.read_cur(
            str(path), D(2025, 1, 3), D(2025, 2, 20), cost=cost, line_item_types=types,
            today=TODAY))
        _same(fast, slow)
        assert took
        assert not isinstance(fast, str)
        assert fast.metadata["cur_files_read"] == 7 and fast.metadata["cur_files_not_in_manifest"]
        assert fast.rows["estimated"].any() and not fast.rows["estimated"].all()
        assert {"EUR", "USD"} == set(fast.rows["currency"])


@pytest.mark.parametrize("owner", ["tag:team", "cost_category:cc"])
def test_duckdb_path_with_owners_gives_the_rows_of_the_pyarrow_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, owner: str
) -> None:
    """The owner looked up in SQL equals the owner looked up in Arrow, label cleaning included,
    and the DuckDB path keeps summing (no fallback) with an owner key."""
    path = fake.write_export(tmp_path, _export_files("s3://billing/exports"))
    key = parse_owner_key(owner)
    fast, slow, took = _both(monkeypatch, lambda: cur.read_cur(
        str(path), D(2025, 1, 3), D(2025, 2, 20), line_item_types=USAGE, today=TODAY,
        owner=key))
    _same(fast, slow)
    assert took and not isinstance(fast, str)
    expected = {"", "a", "b", "c"} if owner.startswith("tag") else {"", "finance"}
    assert set(fast.rows["owner"]) == expected
    plain = cur.read_cur(str(path), D(2025, 1, 3), D(2025, 2, 20), line_item_types=USAGE,
                         today=TODAY)
    assert fast.rows["cost"].sum() == pytest.approx(plain.rows["cost"].sum(), abs=1e-9)


def test_duckdb_path_on_s3_gives_the_rows_of_the_pyarrow_path(
    s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 objects are read by pyarrow and handed to DuckDB as Arrow batches (no httpfs)."""
    bucket = f"cur-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_env)
    client.create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/exports"
    for key, body in _export_files(url).items():
        client.put_object(Bucket=bucket, Key=f"exports/{key}", Body=body)
    for cost, types, owner in (("unblended", USAGE, None),
                               ("amortized", "usage,credit,unknown", None),
                               ("unblended", USAGE, parse_owner_key("tag:team"))):
        fast, slow, took = _both(monkeypatch, lambda cost=cost, types=types, owner=owner:
                                 cur.read_cur(f"{url}/{fake.EXPORT}", D(2025, 1, 3),
                                              D(2025, 2, 20), cost=cost, line_item_types=types,
                                              today=TODAY, owner=owner))
        _same(fast, slow)
        assert took
        assert not isinstance(fast, str)
        assert (set(fast.rows["owner"]) == {"", "a", "b", "c"}) == (owner is not None)


def test_duckdb_sums_are_bit_identical_from_run_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Costs with every bit of their mantissa used: each group is summed in one fixed order,
    so two runs agree to the last bit (and with the pyarrow path to rounding)."""
    rng = np.random.default_rng(5)
    files = {}
    for number in (1, 2, 3):
        items = [Item(D(2025, 1, int(d)), float(c), service=f"svc{s}")
                 for d, c, s in zip(rng.integers(1, 29, 3000), rng.lognormal(-2, 2, 3000),
                                    rng.integers(0, 5, 3000), strict=True)]
        files[fake.data_key("2025-01", number)] = fake.parquet_bytes(items)
    path = fake.write_export(tmp_path, files)

    def read() -> SourceResult:
        return cur.read_cur(str(path), D(2025, 1, 1), D(2025, 1, 31), today=TODAY)

    fast, slow, took = _both(monkeypatch, read)
    assert took and not isinstance(fast, str) and not isinstance(slow, str)
    again = read().rows["cost"].to_numpy()
    assert fast.rows["cost"].to_numpy().tobytes() == again.tobytes()
    np.testing.assert_allclose(again, slow.rows["cost"].to_numpy(), rtol=1e-12)
    pd.testing.assert_frame_equal(fast.rows.drop(columns="cost"),
                                  slow.rows.drop(columns="cost"))


def _zoned(table: pa.Table) -> pa.Table:
    zoned = pa.timestamp("us", "UTC")
    index = table.schema.get_field_index("line_item_usage_start_date")
    return table.set_column(index, pa.field("line_item_usage_start_date", zoned),
                            table.column(index).cast(zoned))


def test_bad_input_gives_the_errors_of_the_pyarrow_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the DuckDB path does not sum goes to the pyarrow path: the same error, naming the
    file (a sum that overflows, a line item without a date, two currencies in a series, a cost
    that is text, a missing column), or the same rows (zoned and naive dates mixed)."""
    january = fake.parquet_bytes([Item(D(2025, 1, 5), 2.0)])

    def check(name: str, second: bytes, expected: str) -> None:
        files = {fake.data_key("2025-01", 1): january, fake.data_key("2025-01", 2): second,
                 fake.manifest_key("2025-01"): fake.manifest_bytes("s3://b/p", "2025-01",
                                                                   [1, 2])}
        path = fake.write_export(tmp_path / name, files)
        fast, slow, _ = _both(monkeypatch, lambda: cur.read_cur(
            str(path), D(2025, 1, 1), D(2025, 1, 31), today=TODAY))
        assert isinstance(fast, str) and fast == slow, (fast, slow)
        assert expected in fast and fake.data_key("2025-01", 2).rsplit("/", 1)[-1] in fast

    check("inf", fake.parquet_bytes([Item(D(2025, 1, 5), 1e308),
                                     Item(D(2025, 1, 5), 1e308, hour=11)]), "sums to inf")
    undated = fake.table([Item(D(2025, 1, 5), 1.0), Item(D(2025, 1, 6), 1.0)])
    index = undated.schema.get_field_index("line_item_usage_start_date")
    undated = undated.set_column(index, "line_item_usage_start_date",
                                 pa.array([None, 0], pa.timestamp("ms")))
    check("undated", _parquet(undated), "have no line_item_usage_start_date")
    check("currency", fake.parquet_bytes([Item(D(2025, 1, 5), 1.0, currency="EUR")]),
          "more than one currency")
    text = fake.table([Item(D(2025, 1, 5), 1.0)])
    index = text.schema.get_field_index("line_item_unblended_cost")
    text = text.set_column(index, "line_item_unblended_cost", pa.array(["1.0 USD"]))
    check("text", _parquet(text), "not numbers")
    check("missing", fake.parquet_bytes([Item(D(2025, 1, 5), 1.0)],
                                        drop=("line_item_product_code",)),
          "missing CUR 2.0 column(s) line_item_product_code")

    mixed = {fake.data_key("2025-01", 1): january,
             fake.data_key("2025-01", 2): _parquet(_zoned(fake.table([Item(D(2025, 1, 5),
                                                                          3.0, hour=23)])))}
    path = fake.write_export(tmp_path / "zones", mixed)
    fast, slow, took = _both(monkeypatch, lambda: cur.read_cur(
        str(path), D(2025, 1, 1), D(2025, 1, 31), today=TODAY))
    _same(fast, slow)
    assert not took and not isinstance(fast, str) and fast.rows["cost"].tolist() == [5.0]


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()
