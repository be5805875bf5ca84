"""The `athena` source: its SQL proven against the `cur` source, its API path against moto and a
small Athena fake, its settings validated.

1. Semantics: the generated SQL runs in DuckDB over the same CUR 2.0 Parquet files the `cur`
   tests write (cur_fakes.py), registered as the export table ``"cur_db"."cur_table"`` with its
   ``billing_period`` partition column, and must give the `cur` source's daily rows (same
   series, costs to the cent, owners, estimated flags, excluded totals) and root causes.
   Translation layer (``to_duckdb``), and only this: Trino's ``element_at(map, key)`` (NULL for
   a missing key) is DuckDB's ``map_extract_value(map, key)``. Everything else (CAST AS DATE,
   TIMESTAMP literals, COALESCE / NULLIF / TRIM / UPPER / LOWER, SUM(CASE ...), GROUP BY
   ordinals, ORDER BY / LIMIT) is the same text in both dialects.
2. API: the real boto3 Athena client against moto (query context, workgroup, output location,
   seeded results; Glue table for `check`) and against a fake speaking Athena's JSON protocol
   for what moto cannot do (result pages with NextToken, a FAILED query, a query that never
   ends).
3. Bad settings fail before any request, naming the variable and the fix.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import boto3
import dagster as dg
import duckdb
import pandas as pd
import pytest
import requests

from sentinel_pipeline.defs.resources import CostSourceResource
from sentinel_pipeline.errors import ConfigError, SourceError
from sentinel_pipeline.settings import OwnerKey, parse_owner_key
from sentinel_pipeline.sources import root_causes as rc
from sentinel_pipeline.sources.athena import (
    DAILY_COLUMNS,
    AthenaSource,
    AthenaTable,
    QueryResult,
    athena_root_causes,
    read_athena,
)
from sentinel_pipeline.sources.cur import cur_root_causes, read_cur
from sentinel_pipeline.storage import TableStore
from sentinel_pipeline_tests import cur_fakes as fake
from sentinel_pipeline_tests.conftest import run_days
from sentinel_pipeline_tests.cur_fakes import Item
from sentinel_pipeline_tests.local_http import local_server

D = date
TODAY = D(2025, 2, 20)  # January final (closed 15+ days ago), February still estimated
DATABASE, TABLE = "cur_db", "cur_table"


# ------------------------------------------------------------------ 1. semantics via DuckDB
def to_duckdb(sql: str) -> str:
    """The documented translation layer: Trino/Athena function names DuckDB spells otherwise."""
    return sql.replace("element_at(", "map_extract_value(")


def _text(value: Any) -> str | None:
    """A DuckDB value as Athena's GetQueryResults renders it (VarCharValue text)."""
    if value is None:
        return None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


class DuckRunner:
    """Runs the source's SQL in DuckDB over a local CUR 2.0 export laid out as AWS writes it."""

    def __init__(self, export: Path) -> None:
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(f'CREATE SCHEMA "{DATABASE}"')
        files = str(export / "data" / "*" / "*.parquet")
        self.con.execute(
            f'CREATE VIEW "{DATABASE}"."{TABLE}" AS SELECT * FROM read_parquet(\'{files}\', '
            "hive_partitioning = true, union_by_name = true, "
            "hive_types = {'BILLING_PERIOD': VARCHAR})")
        self.sql: list[str] = []

    def run(self, sql: str, purpose: str) -> QueryResult:
        self.sql.append(sql)
        cursor = self.con.execute(to_duckdb(sql))
        columns = [d[0] for d in cursor.description]
        rows = [[_text(v) for v in row] for row in cursor.fetchall()]
        return QueryResult(f"duckdb-{len(self.sql)}", columns, rows, 1234)


def _export(tmp_path: Path) -> Path:
    """Two billing periods with every case the cur source treats specially, and a third
    period holding a January-dated line item that partition pruning must leave out."""
    team = {"user_team": "checkout"}
    jan = [
        Item(D(2025, 1, 30), 10.0, tags=team, categories={"cost-center": "cc-1"}),
        Item(D(2025, 1, 30), 5.25, usage_type="USE1-EBS:VolumeUsage", resource="vol-1",
             tags={"user_team": " checkout "}),
        Item(D(2025, 1, 30), 1.5, hour=23, tags={"team": "platform"}),  # raw key wins too
        Item(D(2025, 1, 31), 12.0, tags={"user_team": ""}),  # blank tag: untagged
        Item(D(2025, 1, 31), 4.0, tags={"user_team": "NULL"}),
        Item(D(2025, 1, 30), 3.0, service="AmazonS3", region=None),  # -> global
        Item(D(2025, 1, 30), 4.0, service="AmazonS3", region="", account="444455556666"),
        Item(D(2025, 1, 30), 2.0, service=" AmazonS3 ", region="NULL", currency="usd"),
        Item(D(2025, 1, 31), 7.0, service="", account=""),  # -> unknown
        Item(D(2025, 1, 30), -6.0, item_type="Credit"),
        Item(D(2025, 1, 30), 2.25, item_type="Tax"),
        Item(D(2025, 1, 31), 10.0, item_type="SavingsPlanCoveredUsage", extra={
            "savings_plan_savings_plan_effective_cost": 6.0,
            "savings_plan_net_savings_plan_effective_cost": 5.0}),
        Item(D(2025, 1, 31), -10.0, item_type="SavingsPlanNegation"),
        Item(D(2025, 1, 31), 8.0, item_type="SavingsPlanRecurringFee", extra={
            "savings_plan_total_commitment_to_date": 8.0, "savings_plan_used_commitment": 6.5}),
        Item(D(2025, 1, 31), 4.0, item_type="DiscountedUsage", usage_type="USE1-BoxUsage:r5",
             extra={"reservation_effective_cost": 2.5, "reservation_net_effective_cost": 2.0}),
        Item(D(2025, 1, 31), 1.0, item_type="RIFee", extra={
            "reservation_unused_amortized_upfront_fee_for_billing_period": 0.4,
            "reservation_unused_recurring_fee": 0.3,
            "reservation_net_unused_amortized_upfront_fee_for_billing_period": 0.3,
            "reservation_net_unused_recurring_fee": 0.2}),
        Item(D(2025, 1, 31), 30.0, item_type="Fee",
             extra={"reservation_reservation_a_r_n": "arn:aws:ec2:ri/1"}),
        Item(D(2025, 1, 29), 99.0),  # before the range
    ]
    feb = [
        Item(D(2025, 2, 1), 11.0, tags=team),
        Item(D(2025, 2, 1), 0.1, service="AWSLambda", usage_type="Request", resource=None),
        Item(D(2025, 2, 2), 900.0, usage_type="USE1-BoxUsage:p4d.24xlarge", resource="i-big",
             tags=team),
        Item(D(2025, 2, 2), 9.0, tags=team),
        Item(D(2025, 2, 3), 99.0),  # after the range
    ]
    history = [Item(D(2025, 1, day), 9.0 + day % 3, tags=team) for day in range(18, 30)]
    stray = [Item(D(2025, 1, 30), 5000.0)]  # in March's partition: never scanned
    return fake.write_export(tmp_path, {
        fake.data_key("2025-01"): fake.parquet_bytes(jan + history),
        fake.data_key("2025-02"): fake.parquet_bytes(feb),
        fake.data_key("2025-03"): fake.parquet_bytes(stray),
    })


def _rounded(rows: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Rows as comparable tuples, costs to the cent."""
    keys = ["usage_date", "service", "account_id", "region", "owner", "currency", "estimated",
            "source"]
    out = rows.assign(cost=rows["cost"].map(lambda c: round(float(c), 2)),
                      source="any").sort_values(keys[:5])
    return [tuple(r) for r in out[[*keys, "cost"]].itertuples(index=False, name=None)]


@pytest.mark.parametrize("cost", ["unblended", "net_unblended", "amortized", "net_amortized"])
@pytest.mark.parametrize("owner_key", ["", "tag:team", "cost_category:cost-center"])
def test_the_query_gives_the_cur_sources_daily_rows(tmp_path: Path, cost: str,
                                                    owner_key: str) -> None:
    export = _export(tmp_path)
    owner = parse_owner_key(owner_key)
    types = "Usage,DiscountedUsage,SavingsPlanCoveredUsage"
    start, end = D(2025, 1, 30), D(2025, 2, 2)
    expected = read_cur(str(export), start, end, cost, types, today=TODAY, owner=owner)
    runner = DuckRunner(export)
    table = AthenaTable.validated(DATABASE, TABLE, cost, types, owner)
    got = read_athena(table, runner, start, end, today=TODAY)

    assert len(runner.sql) == 1  # one GROUP BY query a fetch
    assert _rounded(got.rows) == _rounded(expected.rows)
    assert set(got.rows["source"]) == {"athena"}
    assert list(got.rows.columns) == list(expected.rows.columns)
    assert got.rows["estimated"].tolist() == [d >= D(2025, 2, 1)
                                              for d in got.rows["usage_date"]]
    meta, ref = got.metadata, expected.metadata
    assert meta["athena_excluded_cost_by_line_item_type"] == pytest.approx(
        ref["cur_excluded_cost_by_line_item_type"], abs=0.005)
    assert meta["athena_line_items_scanned"] == ref["cur_line_items_scanned"]
    assert meta["athena_billing_periods"] == "2025-01, 2025-02"
    assert meta["athena_query_id"] == "duckdb-1" and meta["athena_bytes_scanned"] == 1234
    if owner is not None:
        assert meta["athena_untagged_cost"] == pytest.approx(ref["cur_untagged_cost"], abs=0.005)
        assert set(got.rows["owner"]) == set(expected.rows["owner"]) != {""}
    # Partition pruning: the WHERE names the two periods, so March's stray line is not read.
    assert "\"billing_period\" IN ('2025-01', '2025-02')" in runner.sql[0]
    assert 5000.0 not in got.rows["cost"].round(2).tolist()


def test_estimated_flags_follow_the_billing_periods(tmp_path: Path) -> None:
    export = _export(tmp_path)
    table = AthenaTable.validated(DATABASE, TABLE, "unblended", "Usage", None)
    for today, january, february in [(D(2025, 2, 10), True, True),
                                     (D(2025, 3, 10), False, True),
                                     (D(2025, 3, 16), False, False)]:
        rows = read_athena(table, DuckRunner(export), D(2025, 1, 30), D(2025, 2, 2),
                           today=today).rows
        flags = {d: bool(e) for d, e in zip(rows["usage_date"], rows["estimated"], strict=True)}
        assert (flags[D(2025, 1, 30)], flags[D(2025, 2, 1)]) == (january, february), today


def test_root_causes_match_the_cur_drill_down(tmp_path: Path) -> None:
    export = _export(tmp_path)
    owner = OwnerKey("tag", "team")
    alerts = pd.DataFrame({
        "usage_date": [D(2025, 2, 2), D(2025, 1, 31)],
        "service": ["AmazonEC2", "AmazonEC2"], "account_id": ["111122223333"] * 2,
        "region": ["us-east-1", "us-east-1"], "owner": ["checkout", ""],
        "impact": [880.0, 5.0],
    })
    runner = DuckRunner(export)
    table = AthenaTable.validated(DATABASE, TABLE, "unblended", "Usage", owner)
    got = athena_root_causes(table, runner, alerts)
    assert got == cur_root_causes(str(export), alerts, "unblended", "Usage", owner=owner)
    first = json.loads(got[0])
    assert first[0]["resource_id"] == "i-big" and first[0]["actual"] == 900.0
    assert len(runner.sql) == 1 and "LIMIT 200000" in runner.sql[0]


def test_quoted_values_cannot_change_the_query(tmp_path: Path) -> None:
    """An owner key or alert label holding quotes is a literal, run as such."""
    export = _export(tmp_path)
    owner = OwnerKey("tag", "x') OR TRUE OR ('")
    table = AthenaTable.validated(DATABASE, TABLE, "unblended", "Usage", owner)
    rows = read_athena(table, DuckRunner(export), D(2025, 1, 30), D(2025, 1, 30),
                       today=TODAY).rows
    assert set(rows["owner"]) == {""}  # no such tag: all untagged, and the query ran
    alerts = pd.DataFrame({"usage_date": [D(2025, 1, 30)], "service": ["Amazon'EC2"],
                           "account_id": ["1'; DROP TABLE x; --"], "region": ["us-east-1"],
                           "owner": [""], "impact": [1.0]})
    assert athena_root_causes(table, DuckRunner(export), alerts) == [""]


def test_no_line_items_at_all_names_the_missing_partition(tmp_path: Path) -> None:
    """A billing period not registered in Glue reads as nothing: the run stops, saying so."""
    export = _export(tmp_path)
    table = AthenaTable.validated(DATABASE, TABLE, "unblended", "Usage", None)
    with pytest.raises(SourceError, match="no line items in cur_db.cur_table.*2025-06.*crawler"):
        read_athena(table, DuckRunner(export), D(2025, 6, 1), D(2025, 6, 2), today=TODAY)


# ------------------------------------------------------------------ 2. the API: moto
@pytest.fixture
def athena_moto(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The session's moto server as Athena and Glue (and every other AWS endpoint)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ATHENA", "AWS_ENDPOINT_URL_GLUE"):
        monkeypatch.setenv(name, s3_endpoint)
    yield s3_endpoint


def _column_info(names: list[str]) -> list[dict[str, Any]]:
    return [{"Name": n, "Label": n, "Type": "varchar", "CatalogName": "hive",
             "SchemaName": "", "TableName": "", "Precision": 0, "Scale": 0,
             "Nullable": "UNKNOWN", "CaseSensitive": True} for n in names]


def _result_rows(names: list[str], rows: list[list[str | None]]) -> list[dict[str, Any]]:
    """Rows as GetQueryResults returns them: the header first, a NULL as an empty cell."""
    return [{"Data": [{"VarCharValue": v} if v is not None else {} for v in row]}
            for row in [list(names), *rows]]


_DAILY = [
    ["2025-01-30", "AmazonEC2", "111122223333", "us-east-1", "", "USD", "Usage", "16.75", "3"],
    ["2025-01-30", "AmazonEC2", "111122223333", "us-east-1", "", "USD", "Credit", "-6.0", "1"],
    ["2025-01-31", "AmazonS3", "444455556666", "global", "", "USD", "Usage", "1.0E-5", "2"],
]


def test_queries_go_to_the_workgroup_database_and_output_on_moto(athena_moto: str) -> None:
    athena = boto3.client("athena")
    if "sentinel" not in [w["Name"] for w in athena.list_work_groups()["WorkGroups"]]:
        athena.create_work_group(Name="sentinel", Configuration={})
    seeded = requests.post(f"{athena_moto}/moto-api/static/athena/query-results", json={
        "results": [{"rows": _result_rows(list(DAILY_COLUMNS), _DAILY),
                     "column_info": _column_info(list(DAILY_COLUMNS))}]}, timeout=10)
    assert seeded.status_code == 201
    source = AthenaSource(database=DATABASE, table=TABLE, workgroup="sentinel",
                          output="s3://results-bucket/sentinel/", cost="unblended",
                          line_item_types="Usage", timeout=30)
    result = source.fetch(D(2025, 1, 30), D(2025, 1, 31))
    rows = result.rows
    assert rows[["usage_date", "service", "region", "cost"]].values.tolist() == [
        [D(2025, 1, 30), "AmazonEC2", "us-east-1", 16.75],
        [D(2025, 1, 31), "AmazonS3", "global", 1e-05]]
    assert result.metadata["athena_excluded_cost_by_line_item_type"] == {"Credit": -6.0}
    assert result.requests == 1
    query_id = result.metadata["athena_query_id"]
    execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
    assert execution["WorkGroup"] == "sentinel"
    assert execution["QueryExecutionContext"]["Database"] == DATABASE
    assert execution["ResultConfiguration"]["OutputLocation"].startswith(
        "s3://results-bucket/sentinel/")
    assert execution["Query"] == AthenaTable.validated(
        DATABASE, TABLE, "unblended", "Usage", None).daily_sql(D(2025, 1, 30), D(2025, 1, 31))


def test_a_missing_workgroup_is_named(athena_moto: str) -> None:
    source = AthenaSource(database=DATABASE, table=TABLE, workgroup="no-such-group", output="",
                          cost="unblended", line_item_types="Usage", timeout=30)
    with pytest.raises(SourceError, match="StartQueryExecution|start_query_execution") as err:
        source.fetch(D(2025, 1, 30), D(2025, 1, 31))
    assert "SENTINEL_ATHENA_WORKGROUP" in str(err.value)
    ok, message = source.check(D(2025, 2, 1))
    assert not ok


def _glue_table(name: str, columns: list[str], partitions: list[str]) -> None:
    glue = boto3.client("glue")
    try:
        glue.create_database(DatabaseInput={"Name": DATABASE})
    except glue.exceptions.AlreadyExistsException:
        pass
    try:
        glue.delete_table(DatabaseName=DATABASE, Name=name)
    except glue.exceptions.EntityNotFoundException:
        pass
    glue.create_table(DatabaseName=DATABASE, TableInput={
        "Name": name,
        "StorageDescriptor": {"Columns": [{"Name": c, "Type": "string"} for c in columns]},
        "PartitionKeys": [{"Name": p, "Type": "string"} for p in partitions]})


def test_doctor_checks_the_workgroup_and_the_table_without_a_query(athena_moto: str) -> None:
    _glue_table(TABLE, list(fake.COLUMN_TYPES), ["billing_period"])
    source = AthenaSource(database=DATABASE, table=TABLE, workgroup="primary",
                          output="s3://results-bucket/q/", cost="amortized",
                          line_item_types="Usage")
    ok, message = source.check(D(2025, 2, 1))
    assert ok, message
    assert "cur_db.cur_table" in message and "no query was run" in message
    no_output = AthenaSource(database=DATABASE, table=TABLE, workgroup="primary", output="",
                             cost="unblended", line_item_types="Usage")
    ok, message = no_output.check(D(2025, 2, 1))
    assert not ok and "SENTINEL_ATHENA_OUTPUT" in message
    _glue_table("flat", list(fake.COLUMN_TYPES), [])
    ok, message = AthenaSource(database=DATABASE, table="flat", workgroup="primary",
                               output="s3://r/q/", cost="unblended",
                               line_item_types="Usage").check(D(2025, 2, 1))
    assert not ok and "not partitioned by billing_period" in message
    ok, message = AthenaSource(database=DATABASE, table="missing", workgroup="primary",
                               output="s3://r/q/", cost="unblended",
                               line_item_types="Usage").check(D(2025, 2, 1))
    assert not ok and "EntityNotFoundException" in message and "SENTINEL_ATHENA_TABLE" in message


def test_sentinel_doctor_reports_the_athena_table(athena_moto: str, sentinel_env: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from sentinel_pipeline.doctor import run_checks

    _glue_table(TABLE, list(fake.COLUMN_TYPES), ["billing_period"])
    for name, value in {"SENTINEL_SOURCE": "athena", "SENTINEL_ATHENA_DATABASE": DATABASE,
                        "SENTINEL_ATHENA_TABLE": TABLE,
                        "SENTINEL_ATHENA_OUTPUT": "s3://results-bucket/q/"}.items():
        monkeypatch.setenv(name, value)
    found = [c for c in run_checks() if "Athena" in c[1] or "athena" in c[1]]
    assert found and found[0][0], found
    monkeypatch.setenv("SENTINEL_ATHENA_TABLE", "cur;table")
    assert any(not ok and "SENTINEL_ATHENA_TABLE" in text for ok, text in run_checks())


# ------------------------------------------------------------------ 2. the API: a fake Athena
class FakeAthena(BaseHTTPRequestHandler):
    """Athena's JSON 1.1 protocol, just enough for one scenario at a time."""

    scenario: ClassVar[str] = "pages"
    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    page_rows: ClassVar[list[list[str | None]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, body: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        params = json.loads(self.rfile.read(length) or b"{}")
        action = self.headers.get("X-Amz-Target", "").split(".")[-1]
        type(self).calls.append((action, params))
        if action == "StartQueryExecution":
            self._reply({"QueryExecutionId": "q-123"})
        elif action == "GetQueryExecution":
            state = {"pages": "SUCCEEDED", "failed": "FAILED", "stuck": "RUNNING"}[self.scenario]
            status: dict[str, Any] = {"State": state}
            if state == "FAILED":
                status["StateChangeReason"] = ("TABLE_NOT_FOUND: line 9:6: Table "
                                               "'awsdatacatalog.cur_db.cur_table' does not exist")
                status["AthenaError"] = {"ErrorCategory": 2, "ErrorType": 1006}
            self._reply({"QueryExecution": {"QueryExecutionId": "q-123", "Status": status,
                                            "Statistics": {"DataScannedInBytes": 52_428_800}}})
        elif action == "GetQueryResults":
            self._results(params)
        elif action == "StopQueryExecution":
            self._reply({})
        else:
            self._reply({"__type": "InvalidRequestException", "Message": action}, 400)

    def _results(self, params: dict[str, Any]) -> None:
        """Two data rows a page; the header only on the first page, as Athena does."""
        size = 2
        start = int(params.get("NextToken") or 0)
        rows = self.page_rows[start:start + size]
        body_rows = _result_rows(list(DAILY_COLUMNS), rows)
        if start:
            body_rows = body_rows[1:]
        result: dict[str, Any] = {"ResultSet": {"Rows": body_rows, "ResultSetMetadata": {
            "ColumnInfo": _column_info(list(DAILY_COLUMNS))}}}
        if start + size < len(self.page_rows):
            result["NextToken"] = str(start + size)
        self._reply(result)


@pytest.fixture
def fake_athena(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeAthena]]:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    FakeAthena.calls = []
    with local_server(FakeAthena) as url:
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ATHENA", "AWS_ENDPOINT_URL_GLUE"):
            monkeypatch.setenv(name, url)
        yield FakeAthena


def _source(timeout: float = 30) -> AthenaSource:
    return AthenaSource(database=DATABASE, table=TABLE, workgroup="primary",
                        output="s3://results/", cost="unblended", line_item_types="Usage",
                        timeout=timeout)


def test_result_pages_are_followed(fake_athena: type[FakeAthena]) -> None:
    fake_athena.scenario = "pages"
    fake_athena.page_rows = [
        [f"2025-01-{day:02d}", "AmazonEC2", "111122223333", "us-east-1", "", "USD", "Usage",
         str(day * 1.25), "1"] for day in range(1, 8)]
    result = _source().fetch(D(2025, 1, 1), D(2025, 1, 7))
    assert result.rows["cost"].tolist() == [day * 1.25 for day in range(1, 8)]
    pages = [p for action, p in fake_athena.calls if action == "GetQueryResults"]
    assert [p.get("NextToken") for p in pages] == [None, "2", "4", "6"]
    assert result.metadata["athena_bytes_scanned"] == 52_428_800
    assert result.metadata["athena_scan_cost_usd"] == pytest.approx(52_428_800 / 1e12 * 5)
    start = next(p for action, p in fake_athena.calls if action == "StartQueryExecution")
    assert start["WorkGroup"] == "primary"
    assert start["ResultConfiguration"] == {"OutputLocation": "s3://results/"}


def test_a_failed_query_names_its_reason_and_id(fake_athena: type[FakeAthena]) -> None:
    fake_athena.scenario = "failed"
    with pytest.raises(SourceError) as err:
        _source().fetch(D(2025, 1, 1), D(2025, 1, 7))
    text = str(err.value)
    assert "q-123" in text and "FAILED" in text and "TABLE_NOT_FOUND" in text
    assert "SENTINEL_ATHENA_TABLE" in text  # the fix


def test_a_query_that_never_ends_times_out_and_is_stopped(
        fake_athena: type[FakeAthena]) -> None:
    fake_athena.scenario = "stuck"
    with pytest.raises(SourceError) as err:
        _source(timeout=0.3).fetch(D(2025, 1, 1), D(2025, 1, 7))
    text = str(err.value)
    assert "q-123" in text and "RUNNING" in text and "0.3 s" in text
    assert "athena_timeout_seconds" in text
    assert ("StopQueryExecution", {"QueryExecutionId": "q-123"}) in fake_athena.calls
    polls = [a for a, _ in fake_athena.calls if a == "GetQueryExecution"]
    assert 1 < len(polls) < 10  # backed off, not a busy loop


def test_bad_results_name_the_query_and_table(fake_athena: type[FakeAthena]) -> None:
    fake_athena.scenario = "pages"
    fake_athena.page_rows = [["2025-01-01", "AmazonEC2", "1", "us-east-1", "", "USD", "Usage",
                              "not-a-number", "1"]]
    with pytest.raises(SourceError, match="q-123 on cur_db.cur_table returned cost"):
        _source().fetch(D(2025, 1, 1), D(2025, 1, 1))
    fake_athena.page_rows = [["Jan 1", "AmazonEC2", "1", "us-east-1", "", "USD", "Usage",
                              "1.0", "1"]]
    with pytest.raises(SourceError, match="usage_date 'Jan 1'"):
        _source().fetch(D(2025, 1, 1), D(2025, 1, 1))
    fake_athena.page_rows = [
        ["2025-01-01", "AmazonEC2", "1", "us-east-1", "", "USD", "Usage", "1.0", "1"],
        ["2025-01-02", "AmazonEC2", "1", "us-east-1", "", "EUR", "Usage", "1.0", "1"]]
    with pytest.raises(SourceError, match="more than one currency.*Athena table cur_db"):
        _source().fetch(D(2025, 1, 1), D(2025, 1, 2))


# ------------------------------------------------------------------ 1 + 2: the whole pipeline
class DuckAthena(BaseHTTPRequestHandler):
    """Athena's JSON protocol executing the SQL it receives in DuckDB (``DuckRunner``): the
    query text travels through the real boto3 client, and results come back in pages."""

    runner: ClassVar[DuckRunner]
    lock: ClassVar[threading.Lock] = threading.Lock()
    results: ClassVar[dict[str, QueryResult]] = {}
    starts: ClassVar[list[dict[str, Any]]] = []
    page: ClassVar[int] = 50

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        params = json.loads(self.rfile.read(length) or b"{}")
        action = self.headers.get("X-Amz-Target", "").split(".")[-1]
        body: dict[str, Any]
        if action == "StartQueryExecution":
            with self.lock:
                result = self.runner.run(params["QueryString"], "fake")
                query_id = f"q-{len(self.results) + 1}"
                self.results[query_id] = result
                self.starts.append(params)
            body = {"QueryExecutionId": query_id}
        elif action == "GetQueryExecution":
            body = {"QueryExecution": {"QueryExecutionId": params["QueryExecutionId"],
                                       "Status": {"State": "SUCCEEDED"},
                                       "Statistics": {"DataScannedInBytes": 1_000_000}}}
        elif action == "GetQueryResults":
            result = self.results[params["QueryExecutionId"]]
            size = min(int(params.get("MaxResults") or 1000), self.page)
            start = int(params.get("NextToken") or 0)
            rows = [result.columns] if start == 0 else []
            rows += result.rows[start:start + size]
            body = {"ResultSet": {
                "Rows": [{"Data": [{"VarCharValue": v} if v is not None else {} for v in r]}
                         for r in rows],
                "ResultSetMetadata": {"ColumnInfo": _column_info(result.columns)}}}
            if start + size < len(result.rows):
                body["NextToken"] = str(start + size)
        else:
            body = {}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _steady_then_spike(last: date, days: int) -> list[Item]:
    """Steady EC2 and S3 spend of two teams, then EC2 of one team jumps on ``last`` from one
    new resource."""
    items = []
    for n in range(days):
        day = last - timedelta(days=days - 1 - n)
        wiggle = 1.0 + 0.02 * ((n * 7) % 5 - 2)
        items += [Item(day, 80.0 * wiggle, tags={"user_team": "checkout"}),
                  Item(day, 20.0 * wiggle, usage_type="USE1-EBS", tags={"user_team": "data"}),
                  Item(day, 40.0 * wiggle, service="AmazonS3", usage_type="TimedStorage-ByteHrs",
                       resource="my-bucket"),
                  Item(day, -3.0, item_type="Credit")]
    items.append(Item(last, 400.0, usage_type="USE1-DataTransfer-Out-Bytes", resource="i-0spike",
                      tags={"user_team": "checkout"}))
    return items


def test_pipeline_through_athena_matches_cur_and_names_the_root_cause(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real daily job with SENTINEL_SOURCE=athena: boto3 sends the SQL to a fake Athena
    that runs it in DuckDB over the export; raw_daily_costs equals what the cur source reads
    from the same files, and the alert's root cause is the new resource."""
    last = D(2025, 2, 10)
    items = _steady_then_spike(last, 41)
    export = fake.write_export(tmp_path / "export", {
        fake.data_key("2025-01"): fake.parquet_bytes([i for i in items if i.day.month == 1]),
        fake.data_key("2025-02"): fake.parquet_bytes([i for i in items if i.day.month == 2])})
    DuckAthena.runner, DuckAthena.results, DuckAthena.starts = DuckRunner(export), {}, []
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "SENTINEL_SOURCE": "athena",
                        "SENTINEL_ATHENA_DATABASE": DATABASE, "SENTINEL_ATHENA_TABLE": TABLE,
                        "SENTINEL_ATHENA_WORKGROUP": "finops",
                        "SENTINEL_ATHENA_OUTPUT": "s3://athena-results/sentinel/",
                        "SENTINEL_OWNER_KEY": "tag:team", "SLACK_BOT_TOKEN": "",
                        "SENTINEL_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(name, value)
    with local_server(DuckAthena) as url:
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ATHENA", "AWS_ENDPOINT_URL_GLUE"):
            monkeypatch.setenv(name, url)
        run_days(instance, last - timedelta(days=40), last)
    store = TableStore(str(tmp_path / "data"))
    owner = OwnerKey("tag", "team")
    for day in (last - timedelta(days=40), D(2025, 1, 31), last):
        raw = store.read_partition("raw_daily_costs", day)
        assert raw is not None
        expected = read_cur(str(export), day, day, owner=owner).rows
        assert _rounded(raw) == _rounded(expected), day
    assert [p["WorkGroup"] for p in DuckAthena.starts] == ["finops", "finops"]  # fetch, causes
    assert DuckAthena.starts[0]["QueryExecutionContext"] == {"Database": DATABASE}
    assert DuckAthena.starts[0]["ResultConfiguration"] == {
        "OutputLocation": "s3://athena-results/sentinel/"}
    anomalies = store.read_partition("cost_anomalies", last)
    assert anomalies is not None
    alert = anomalies[anomalies["alert"]]
    assert list(zip(alert["service"], alert["owner"], strict=True)) == [("AmazonEC2", "checkout")]
    causes = rc.from_json(alert["root_causes"].iloc[0])
    assert causes[0]["resource_id"] == "i-0spike" and causes[0]["increase"] == 400.0
    event = instance.get_latest_materialization_event(dg.AssetKey("raw_daily_costs"))
    assert event is not None and event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    assert metadata["athena_billing_periods"].value == "2025-01, 2025-02"
    assert metadata["athena_excluded_cost_by_line_item_type"].value == {"Credit": -123.0}


# ------------------------------------------------------------------ 3. bad settings
class _NoNetwork:
    """A client that fails the test if any request is made."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{name} called: settings must be checked before any request")


@pytest.mark.parametrize(("database", "table", "output", "types", "match"), [
    ("cur_db", "", "", "Usage", "needs SENTINEL_ATHENA_TABLE"),
    ("", "cur_table", "", "Usage", "needs SENTINEL_ATHENA_DATABASE"),
    ("cur_db", 'cur"; DROP TABLE x; --', "", "Usage", "SENTINEL_ATHENA_TABLE=.*not a Glue name"),
    ("cur db", "cur_table", "", "Usage", "SENTINEL_ATHENA_DATABASE=.*not a Glue name"),
    ("cur_db", "cur_table", "results-bucket/q", "Usage", "SENTINEL_ATHENA_OUTPUT=.*s3://"),
    ("cur_db", "cur_table", "", "Usage,x')--", "SENTINEL_CUR_LINE_ITEM_TYPES"),
    ("cur_db", "cur_table", "", "Usage", "SENTINEL_ATHENA_WORKGROUP=.*not an Athena workgroup"),
])
def test_bad_settings_fail_before_any_request(database: str, table: str, output: str,
                                              types: str, match: str) -> None:
    workgroup = "bad group!" if "WORKGROUP" in match else "team.finops"
    source = AthenaSource(database=database, table=table, workgroup=workgroup, output=output,
                          cost="unblended", line_item_types=types, client=_NoNetwork())
    with pytest.raises(ConfigError, match=match):
        source.fetch(D(2025, 1, 1), D(2025, 1, 2))
    ok, message = source.check(D(2025, 1, 3))
    assert not ok and re_search(match, message)


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


def test_the_resource_builds_the_athena_source() -> None:
    resource = CostSourceResource(source="athena", athena_database=DATABASE,
                                  athena_table=TABLE, athena_workgroup="finops",
                                  athena_output="s3://r/", athena_timeout_seconds=42,
                                  cur_cost="amortized", owner_key="tag:team")
    source = resource.cost_source()
    assert isinstance(source, AthenaSource)
    assert (source.database, source.table, source.workgroup, source.output, source.timeout,
            source.cost, source.owner) == (DATABASE, TABLE, "finops", "s3://r/", 42, "amortized",
                                           OwnerKey("tag", "team"))
    assert math.isfinite(source.timeout)
