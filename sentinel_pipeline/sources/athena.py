"""The `athena` cost source: a CUR 2.0 Data Export summed by Athena, not on this machine.

The `cur` source reads the export's Parquet files itself, which is right up to a few hundred
million line items a month. Beyond that one machine is the bottleneck, and the export's own
query engine does the sum: Athena over the export table (created by the Data Exports
CloudFormation template or a Glue crawler, partitioned by ``billing_period`` = ``YYYY-MM``).
This source sends ONE ``GROUP BY`` query per run and reads back a few thousand series-days.

Semantics are the `cur` source's, term for term (``sources/cur.py``): the same columns, the
same cost measures (the SQL of ``cur._cost_sum_sql``), the same line item types kept and the
others totalled per type in the metadata, the same labels (empty region -> ``global``, empty
service or account -> ``unknown``, currency upper-cased, default ``USD``), the same owner
lookup (``cur.owner_lookup``) and the same ``estimated`` rule (``cur.estimated_days``). Labels
are cleaned in SQL, so Athena groups by the cleaned values. ``test_athena_source.py`` runs the
generated SQL in DuckDB over the CUR test exports and compares it with the `cur` source.

Cost control: the WHERE names the ``billing_period`` partitions of [start, end], so Athena
reads only those months (Athena bills ~$5 per TB scanned, 10 MB minimum per query), and only the
columns the query names (Parquet is columnar). Each run's bytes scanned and their price are in
the run metadata.

Safety: user settings become SQL only after validation (database and table: letters, digits,
``_`` and ``-``, always double-quoted; line item types: letters, digits, spaces, ``_``, ``-``)
and every text value (owner keys, alert labels) is a single-quoted literal with quotes doubled,
which is the whole escaping Trino's string literals have (no backslash escapes). Dates are
``datetime.date`` values, formatted by Python.

The API: ``StartQueryExecution`` in the workgroup (with the result location when one is set),
``GetQueryExecution`` polled with backoff until it succeeds, fails (the error names the state,
Athena's reason and the query id) or the timeout passes (the query is stopped, so it bills no
more), then ``GetQueryResults`` page by page. The endpoint, region and credentials are boto3's
own (``AWS_REGION``, ``AWS_ENDPOINT_URL_ATHENA``, ``AWS_PROFILE``...).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import pandas as pd

from sentinel_pipeline import schema, settings
from sentinel_pipeline.errors import ConfigError, SourceError
from sentinel_pipeline.settings import OwnerKey
from sentinel_pipeline.sources import root_causes as rc
from sentinel_pipeline.sources.base import (
    Check,
    CostSource,
    RootCauses,
    SourceOptions,
    SourceResult,
)
from sentinel_pipeline.sources.cur import (
    ACCOUNT,
    CURRENCY,
    DATE,
    ITEM_TYPE,
    REGION,
    RESOURCE,
    SERVICE,
    USAGE_TYPE,
    _cost_sum_sql,
    check_cost,
    cost_columns,
    estimated_days,
    owner_lookup,
    parse_line_item_types,
)
from sentinel_pipeline.sources.exports import (
    DEFAULT_CURRENCY,
    GLOBAL_REGION,
    UNKNOWN,
    billing_periods,
    check_one_currency,
    daily_rows,
)

SOURCE_NAME = "athena"
PARTITION = "billing_period"  # the Data Export's Hive folder BILLING_PERIOD=YYYY-MM, in Glue
USD_PER_TB_SCANNED = 5.0
MIN_BILLED_BYTES = 10 * 1024 * 1024  # Athena bills at least 10 MB a query
ROOT_CAUSE_ROW_LIMIT = 200_000  # detail lines read back for one run's drill-down, largest first
DAILY_COLUMNS: tuple[str, ...] = ("usage_date", "service", "account_id", "region", "owner",
                                  "currency", "item_type", "cost", "line_items")
DETAIL_COLUMNS: tuple[str, ...] = ("usage_date", "service", "account_id", "region", "owner",
                                   "usage_type", "resource_id", "cost")

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,254}$")
_ITEM_TYPE = re.compile(r"^[A-Za-z0-9_ -]{1,100}$")
_WORKGROUP = re.compile(r"^[A-Za-z0-9._-]{1,128}$")  # Athena's own rule for workgroup names
_FIX_TABLE = ("set SENTINEL_ATHENA_DATABASE and SENTINEL_ATHENA_TABLE to the Glue database and "
              "table of the CUR 2.0 Data Export (as the export's CloudFormation stack or Glue "
              "crawler created them)")

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ SQL
def quote_identifier(name: str, variable: str) -> str:
    """A database or table name as a double-quoted SQL identifier, once it is a plain Glue
    name: anything else could change the query, so it is refused, naming the variable."""
    if not name:
        raise ConfigError(f"SENTINEL_SOURCE=athena needs {variable}: {_FIX_TABLE}.")
    if not _IDENTIFIER.match(name):
        raise ConfigError(
            f"{variable}={name!r} is not a Glue name (letters, digits, _ and - only, at most "
            f"255): {_FIX_TABLE}."
        )
    return f'"{name}"'


def quote_text(value: str) -> str:
    """A single-quoted SQL string literal: quotes doubled (Trino has no backslash escapes);
    control characters are refused rather than sent."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise SourceError(f"{value!r} holds control characters and cannot be sent to Athena")
    return "'" + value.replace("'", "''") + "'"


def _col(name: str) -> str:
    """A CUR 2.0 column (a fixed schema name, never user input) as an SQL identifier."""
    return f'"{name}"'


def _label(expression: str, default: str, upper: bool = False) -> str:
    """SQL of cur's label cleaning: trimmed (upper-cased), null, '' and 'NULL' -> default."""
    text = f"UPPER(TRIM({expression}))" if upper else f"TRIM({expression})"
    return f"COALESCE(NULLIF(NULLIF({text}, ''), 'NULL'), {quote_text(default)})"


def _owner(lookup: tuple[str, tuple[str, ...]] | None) -> str:
    """SQL of the owner: the first of the key's spellings with a non-blank value in the map
    column (``element_at``: a missing key is NULL, where ``map[key]`` would fail), as cur
    reads it; untagged is ''."""
    if lookup is None:
        return "''"
    column, names = lookup
    values = [f"NULLIF(TRIM(element_at({_col(column)}, {quote_text(n)})), '')" for n in names]
    found = values[0] if len(values) == 1 else f"COALESCE({', '.join(values)})"
    return f"COALESCE(NULLIF({found}, 'NULL'), '')"


@dataclass(frozen=True)
class AthenaTable:
    """The validated settings a query is built from (no network)."""

    database: str
    table: str
    cost: str
    keep: tuple[str, ...]  # lower-case line item types counted
    owner: OwnerKey | None = None

    @classmethod
    def validated(cls, database: str, table: str, cost: str, line_item_types: str,
                  owner: OwnerKey | None) -> AthenaTable:
        quote_identifier(database.strip(), "SENTINEL_ATHENA_DATABASE")
        quote_identifier(table.strip(), "SENTINEL_ATHENA_TABLE")
        keep = parse_line_item_types(line_item_types)
        bad = [t for t in keep if not _ITEM_TYPE.match(t)]
        if bad:
            raise ConfigError(
                f"SENTINEL_CUR_LINE_ITEM_TYPES holds {bad[0]!r}, which is no CUR line item type "
                f"(letters, digits, spaces, _ and - only), e.g. "
                f"{settings.default('SENTINEL_CUR_LINE_ITEM_TYPES')}."
            )
        return cls(database.strip(), table.strip(), check_cost(cost), keep, owner)

    @property
    def name(self) -> str:
        """How users see the table in messages: database.table."""
        return f"{self.database}.{self.table}"

    @property
    def source(self) -> str:
        return (f"{quote_identifier(self.database, 'SENTINEL_ATHENA_DATABASE')}."
                f"{quote_identifier(self.table, 'SENTINEL_ATHENA_TABLE')}")

    def _where(self, start: dt.date, end: dt.date) -> str:
        """The partitions of [start, end] (the pruning that keeps the scan, and its price,
        to those months) and the usage days themselves."""
        periods = ", ".join(quote_text(p) for p in billing_periods(start, end))
        first = f"TIMESTAMP '{start.isoformat()} 00:00:00'"
        last = f"TIMESTAMP '{(end + dt.timedelta(days=1)).isoformat()} 00:00:00'"
        return (f'"{PARTITION}" IN ({periods})\n'
                f'  AND "{DATE}" >= {first} AND "{DATE}" < {last}')

    def _labels(self) -> list[str]:
        """The series columns of both queries: UTC day and clean labels."""
        return [
            f"CAST({_col(DATE)} AS DATE) AS usage_date",
            f"{_label(_col(SERVICE), UNKNOWN)} AS service",
            f"{_label(_col(ACCOUNT), UNKNOWN)} AS account_id",
            f"{_label(_col(REGION), GLOBAL_REGION)} AS region",
            f"{_owner(owner_lookup(self.owner))} AS owner",
        ]

    def daily_sql(self, start: dt.date, end: dt.date) -> str:
        """The one query of a fetch: cost and line items per day, clean series labels,
        currency and line item type (kept and excluded types are split afterwards, so the
        excluded totals come from the same scan)."""
        columns = [
            *self._labels(),
            f"{_label(_col(CURRENCY), DEFAULT_CURRENCY, upper=True)} AS currency",
            f"{_label(_col(ITEM_TYPE), UNKNOWN)} AS item_type",
            f"{_cost_sum_sql(self.cost)} AS cost",
            "COUNT(*) AS line_items",
        ]
        return ("SELECT " + ",\n       ".join(columns) + f"\nFROM {self.source}\n"
                f"WHERE {self._where(start, end)}\nGROUP BY 1, 2, 3, 4, 5, 6, 7")

    def detail_sql(self, start: dt.date, end: dt.date, services: Sequence[str],
                   accounts: Sequence[str], limit: int = ROOT_CAUSE_ROW_LIMIT) -> str:
        """The drill-down query: the kept line items of the alerted services and accounts per
        day, series, usage type and resource, the largest first and at most ``limit``."""
        types = ", ".join(quote_text(t) for t in self.keep)
        item_type = _label(_col(ITEM_TYPE), UNKNOWN)
        service = _label(_col(SERVICE), UNKNOWN)
        account = _label(_col(ACCOUNT), UNKNOWN)
        columns = [
            *self._labels(),
            f"COALESCE({_col(USAGE_TYPE)}, '') AS usage_type",
            f"COALESCE({_col(RESOURCE)}, '') AS resource_id",
            f"{_cost_sum_sql(self.cost)} AS cost",
        ]
        return ("SELECT " + ",\n       ".join(columns) + f"\nFROM {self.source}\n"
                f"WHERE {self._where(start, end)}\n"
                f"  AND LOWER({item_type}) IN ({types})\n"
                f"  AND {service} IN ({', '.join(quote_text(s) for s in services)})\n"
                f"  AND {account} IN ({', '.join(quote_text(a) for a in accounts)})\n"
                f"GROUP BY 1, 2, 3, 4, 5, 6, 7\nORDER BY 8 DESC\nLIMIT {int(limit)}")


# ------------------------------------------------------------------------------ results
@dataclass
class QueryResult:
    """What a finished query handed back: column names, rows of text (None = SQL NULL)."""

    query_id: str
    columns: list[str]
    rows: list[list[str | None]]
    scanned_bytes: int = 0


class QueryRunner(Protocol):
    """Runs one SQL statement to the end (Athena, or DuckDB in the tests)."""

    def run(self, sql: str, purpose: str) -> QueryResult: ...


def result_frame(result: QueryResult, expected: Sequence[str], table: str,
                 numbers: Sequence[str]) -> pd.DataFrame:
    """The query's rows as a frame, every value checked: a missing column, an unparsable day
    or number stops the run naming the query, the table and the fix."""
    where = f"Athena query {result.query_id} on {table}"
    missing = [c for c in expected if c not in result.columns]
    if missing:
        raise SourceError(
            f"{where} returned columns {', '.join(result.columns) or '(none)'}, without "
            f"{', '.join(missing)}: the workgroup may rewrite queries or the result was not "
            f"this query's; rerun, and check the workgroup's settings"
        )
    index = [result.columns.index(c) for c in expected]
    frame = pd.DataFrame([[row[i] if i < len(row) else None for i in index]
                          for row in result.rows], columns=list(expected), dtype=object)
    days = pd.to_datetime(frame["usage_date"], format="%Y-%m-%d", errors="coerce")
    if days.isna().any():
        bad = frame.loc[days.isna(), "usage_date"].iloc[0]
        raise SourceError(
            f"{where} returned usage_date {bad!r}, not a YYYY-MM-DD day: column {DATE} of the "
            f"table must be a timestamp, as the CUR 2.0 Data Export defines it; recreate the "
            f"table from the export's CloudFormation template or Glue crawler"
        )
    frame["usage_date"] = days.dt.date
    for name in numbers:
        values = pd.to_numeric(frame[name].fillna("0"), errors="coerce")
        if values.isna().any() or not bool(pd.Series(values).map(math.isfinite).all()):
            bad = frame.loc[values.isna() | ~values.map(math.isfinite), name].iloc[0]
            raise SourceError(
                f"{where} returned {name} {bad!r}, not a finite number: a cost column of the "
                f"table is not numeric or a sum overflowed; the CUR 2.0 table stores costs as "
                f"double: recreate it from the export's CloudFormation template or Glue crawler"
            )
        frame[name] = values.astype("float64")
    for name in expected:
        if name not in numbers and name != "usage_date":
            frame[name] = frame[name].fillna("").astype(str)
    return frame


def scan_cost_usd(scanned_bytes: int) -> float:
    """What Athena bills for a query that scanned this much."""
    return round(max(scanned_bytes, MIN_BILLED_BYTES) / 1e12 * USD_PER_TB_SCANNED, 9)


# ------------------------------------------------------------------------------ the API
@dataclass
class AthenaClient:
    """Athena queries through boto3: start, poll with backoff up to ``timeout`` seconds,
    read the result pages. ``sleep`` and ``clock`` are injectable so tests need not wait."""

    workgroup: str
    database: str
    output: str = ""
    table: str = ""  # database.table, for messages
    timeout: float = settings.ATHENA_TIMEOUT_SECONDS
    first_delay: float = 0.5
    max_delay: float = 5.0
    page_size: int = 1000
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    client: Any = None
    queries: int = 0
    scanned_bytes: int = 0

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = _boto_client("athena")

    def run(self, sql: str, purpose: str) -> QueryResult:
        """Run one query to the end; any failure is a SourceError naming the query id."""
        query_id = self._start(sql, purpose)
        self.queries += 1
        state, execution = self._wait(query_id, purpose)
        if state != "SUCCEEDED":
            raise self._failed(query_id, state, execution, purpose)
        scanned = int(execution.get("Statistics", {}).get("DataScannedInBytes") or 0)
        self.scanned_bytes += scanned
        columns, rows = self._results(query_id)
        return QueryResult(query_id, columns, rows, scanned)

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        """One API call with its errors turned into messages naming the fix."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            response: dict[str, Any] = getattr(self.client, operation)(**params)
            return response
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = str(error.get("Code", "")), str(error.get("Message", ""))
            raise SourceError(_client_message("Athena", operation, code, message, self.table,
                                              self.workgroup)) from exc
        except NoCredentialsError as exc:
            raise SourceError(_NO_CREDENTIALS) from exc
        except BotoCoreError as exc:
            raise SourceError(f"Athena {operation} could not be made ({type(exc).__name__}: "
                              f"{exc}); check the network and AWS_ENDPOINT_URL_ATHENA / "
                              f"AWS_REGION") from exc

    def _start(self, sql: str, purpose: str) -> str:
        params: dict[str, Any] = {
            "QueryString": sql,
            "QueryExecutionContext": {"Database": self.database},
            "WorkGroup": self.workgroup,
        }
        if self.output:
            params["ResultConfiguration"] = {"OutputLocation": self.output}
        log.info("Athena: starting the %s query on %s in workgroup %s", purpose, self.table,
                 self.workgroup)
        return str(self._call("start_query_execution", **params)["QueryExecutionId"])

    def _wait(self, query_id: str, purpose: str) -> tuple[str, dict[str, Any]]:
        """Poll until the query leaves QUEUED / RUNNING; past the timeout, stop it."""
        started = self.clock()
        delay = self.first_delay
        while True:
            execution = self._call("get_query_execution",
                                   QueryExecutionId=query_id)["QueryExecution"]
            state = str(execution.get("Status", {}).get("State", ""))
            if state not in ("QUEUED", "RUNNING", ""):
                return state, execution
            waited = self.clock() - started
            if waited >= self.timeout:
                self._stop(query_id)
                raise SourceError(
                    f"Athena query {query_id} ({purpose} on {self.table}, workgroup "
                    f"{self.workgroup}) was still {state or 'starting'} after {self.timeout:g} s "
                    f"and was stopped. Rerun later if the workgroup was busy; else raise "
                    f"athena_timeout_seconds in the source resource config"
                )
            pause = min(delay, self.max_delay, max(self.timeout - waited, 0.0))
            self.sleep(pause)
            delay = min(delay * 2, self.max_delay)

    def _stop(self, query_id: str) -> None:
        """Cancel a query given up on, so it bills no more; failing to is only logged."""
        try:
            self._call("stop_query_execution", QueryExecutionId=query_id)
        except SourceError as exc:
            log.warning("Athena query %s could not be stopped: %s", query_id, exc)

    def _failed(self, query_id: str, state: str, execution: dict[str, Any],
                purpose: str) -> SourceError:
        status = execution.get("Status", {})
        error = status.get("AthenaError", {}) or {}
        reason = str(status.get("StateChangeReason") or error.get("ErrorMessage") or
                     "no reason given")
        text = reason.lower()
        if "table_not_found" in text or "does not exist" in text or "not found" in text:
            fix = _FIX_TABLE
        elif "access denied" in text or "accessdenied" in text or "permission" in text:
            fix = ("give the role the IAM actions listed in the README (athena:*QueryExecution, "
                   "athena:GetQueryResults, glue:GetTable/GetPartitions, s3 on the export and "
                   "result buckets)")
        elif "output" in text and "location" in text:
            fix = "set SENTINEL_ATHENA_OUTPUT to an s3:// folder, or give the workgroup one"
        elif "column" in text:
            fix = ("the table must be the CUR 2.0 Data Export table with all its columns; "
                   "recreate it from the export's CloudFormation template or Glue crawler")
        else:
            fix = "fix the cause above and rerun the day"
        return SourceError(
            f"Athena query {query_id} ({purpose} on {self.table}, workgroup {self.workgroup}) "
            f"ended {state}: {reason}; {fix}"
        )

    def _results(self, query_id: str) -> tuple[list[str], list[list[str | None]]]:
        """Every result row, page by page; the header row Athena puts first is dropped."""
        columns: list[str] = []
        rows: list[list[str | None]] = []
        token: str | None = None
        seen: set[str] = set()
        first = True
        while True:
            params: dict[str, Any] = {"QueryExecutionId": query_id, "MaxResults": self.page_size}
            if token:
                params["NextToken"] = token
            page = self._call("get_query_results", **params)
            result = page.get("ResultSet", {})
            if first:
                info = result.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                columns = [str(c.get("Name") or c.get("Label") or "") for c in info]
            for number, row in enumerate(result.get("Rows", [])):
                values = [cell.get("VarCharValue") for cell in row.get("Data", [])]
                if first and number == 0 and values == columns:
                    continue  # the header row of the first page
                rows.append(values)
            first = False
            token = page.get("NextToken") or None
            if not token:
                return columns, rows
            if token in seen:
                raise SourceError(f"Athena returned the same NextToken twice for query "
                                  f"{query_id}; rerun the day")
            seen.add(token)


_NO_CREDENTIALS = ("No AWS credentials found for Athena: set AWS_PROFILE, or AWS_ACCESS_KEY_ID "
                   "and AWS_SECRET_ACCESS_KEY, or run where an IAM role with the Athena, Glue "
                   "and S3 permissions of the README is attached")


def _boto_client(service: str) -> Any:
    """A boto3 client from a fresh session (the environment as it is now); boto3's standard
    retries handle throttling. No region is a ConfigError naming the fix."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, NoRegionError

    try:
        return boto3.session.Session().client(
            service, config=Config(retries={"mode": "standard", "max_attempts": 5},
                                   connect_timeout=10, read_timeout=60))
    except NoRegionError as exc:
        raise ConfigError(f"no AWS region for {service}: set AWS_REGION to the region of the "
                          "Athena workgroup and the export table") from exc
    except (BotoCoreError, ValueError) as exc:
        raise ConfigError(f"cannot set up the {service} client ({type(exc).__name__}): fix "
                          "AWS_PROFILE / AWS_CONFIG_FILE or the AWS_ENDPOINT_URL* settings"
                          ) from exc


def _client_message(api: str, operation: str, code: str, message: str, table: str,
                    workgroup: str) -> str:
    """A refused request as a message saying what to fix."""
    if code in ("AccessDeniedException", "AccessDenied") or "not authorized" in message:
        fix = ("the role needs athena:StartQueryExecution, GetQueryExecution, GetQueryResults, "
               "StopQueryExecution, GetWorkGroup, glue:GetDatabase/GetTable/GetPartitions and "
               "s3 access to the export and result buckets (README)")
    elif code in ("UnrecognizedClientException", "InvalidSignatureException",
                  "ExpiredTokenException", "InvalidClientTokenId"):
        fix = "the AWS credentials are invalid or expired: refresh them or fix AWS_PROFILE"
    elif code == "EntityNotFoundException":
        fix = _FIX_TABLE
    elif "workgroup" in message.lower():
        fix = f"set SENTINEL_ATHENA_WORKGROUP to an existing, enabled workgroup (not {workgroup!r})"
    elif "output location" in message.lower():
        fix = "set SENTINEL_ATHENA_OUTPUT to an s3:// folder, or give the workgroup one"
    else:
        fix = "check the Athena settings (SENTINEL_ATHENA_*) and rerun"
    return f"{api} {operation} for {table or 'the CUR table'} refused ({code}: {message}); {fix}"


# ------------------------------------------------------------------------------ the source
def read_athena(table: AthenaTable, runner: QueryRunner, start: dt.date, end: dt.date,
                today: dt.date | None = None) -> SourceResult:
    """raw_daily_costs rows for [start, end] from one Athena query, with cur's metadata
    (prefixed athena_) plus the query id and the bytes it scanned and their price."""
    if start > end:
        raise SourceError(f"start {start} is after end {end}; ask for a range with start <= end")
    today = today or dt.datetime.now(dt.UTC).date()
    result = runner.run(table.daily_sql(start, end), "daily costs")
    frame = result_frame(result, DAILY_COLUMNS, table.name, ("cost", "line_items"))
    if frame.empty:
        # An export big enough for Athena has line items every day: none at all means the
        # partition is not registered in Glue (or not delivered yet), not a day without spend.
        raise SourceError(
            f"Athena query {result.query_id} found no line items in {table.name} between "
            f"{start} and {end} (billing_period {', '.join(billing_periods(start, end))}): "
            f"the partition is not in the Glue table yet (rerun the export's crawler, or "
            f"MSCK REPAIR TABLE {table.name}, or use partition projection) or AWS has not "
            f"delivered the period yet (rerun later)"
        )
    kept_mask = frame["item_type"].str.lower().isin(table.keep)
    excluded = frame[~kept_mask].groupby("item_type", sort=True)["cost"].sum()
    kept = frame[kept_mask].assign(file=f"Athena table {table.name}")
    where = f"Athena table {table.name} (query {result.query_id})"
    check_one_currency(kept, where, start, end)
    rows = daily_rows(kept, SOURCE_NAME, lambda days: estimated_days(days, today))
    meta: dict[str, Any] = {
        "table": table.name,
        "query_id": result.query_id,
        "billing_periods": ", ".join(billing_periods(start, end)),
        "bytes_scanned": result.scanned_bytes,
        "scan_cost_usd": scan_cost_usd(result.scanned_bytes),
        "line_items_scanned": int(frame["line_items"].sum()),
        "cost_measure": table.cost,
        "line_item_types": ", ".join(table.keep),
        "excluded_cost_by_line_item_type": {str(k): round(float(v), 6)
                                            for k, v in excluded.items()},
        "estimated_days": int(rows.loc[rows["estimated"], "usage_date"].nunique()),
    }
    if table.owner is not None:
        meta["owner_key"] = str(table.owner)
        meta["untagged_cost"] = round(float(rows.loc[rows["owner"] == "", "cost"].sum()), 6)
    return SourceResult(rows, {f"athena_{k}": v for k, v in meta.items()}, requests=1)


def athena_root_causes(table: AthenaTable, runner: QueryRunner,
                       anomalies: pd.DataFrame) -> list[str]:
    """JSON top contributors of each anomaly row: one query over [min D - 14, max D] for the
    alerted services and accounts, ranked per series by root_causes.rank_each."""
    if len(anomalies) == 0:
        return []
    days, start, end = rc.window(anomalies)
    services = sorted(set(anomalies["service"].astype(str)))
    accounts = sorted(set(anomalies["account_id"].astype(str)))
    result = runner.run(table.detail_sql(start, end, services, accounts), "root causes")
    detail = result_frame(result, DETAIL_COLUMNS, table.name, ("cost",))
    if len(detail) >= ROOT_CAUSE_ROW_LIMIT:
        log.info("Athena drill-down on %s hit %d lines: the smallest were left out",
                 table.name, ROOT_CAUSE_ROW_LIMIT)
    by_series = dict(tuple(detail.groupby(schema.SERIES_KEY, sort=False)))
    return rc.rank_each(anomalies, days, by_series)


def check_table(table: AthenaTable, workgroup: str, output: str, athena: Any = None,
                glue: Any = None) -> Check:
    """For `sentinel doctor`, without running a query (no scan cost): the workgroup exists,
    is enabled and has a result location (or SENTINEL_ATHENA_OUTPUT gives one), and the
    Glue table has the columns and the billing_period partition a run needs."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        athena = athena or _boto_client("athena")
        glue = glue or _boto_client("glue")
        group = athena.get_work_group(WorkGroup=workgroup).get("WorkGroup")
        if not group:
            return False, (f"Athena workgroup {workgroup} was not found: set "
                           "SENTINEL_ATHENA_WORKGROUP to an existing, enabled workgroup")
        if str(group.get("State", "ENABLED")) != "ENABLED":
            return False, (f"Athena workgroup {workgroup} is {group.get('State')}: enable it "
                           f"or set SENTINEL_ATHENA_WORKGROUP to another one")
        configured = (group.get("Configuration", {}).get("ResultConfiguration", {})
                      .get("OutputLocation", ""))
        where = output or configured
        if not where:
            return False, (f"Athena workgroup {workgroup} has no query result location: set "
                           f"SENTINEL_ATHENA_OUTPUT to an s3:// folder, or give the workgroup one")
        found = glue.get_table(DatabaseName=table.database, Name=table.table)["Table"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return False, _client_message("Athena/Glue", exc.operation_name, str(error.get("Code")),
                                      str(error.get("Message")), table.name, workgroup)
    except (BotoCoreError, ConfigError) as exc:
        return False, f"Athena cannot be reached ({type(exc).__name__}: {exc})"
    names = {c.get("Name", "").lower()
             for c in found.get("StorageDescriptor", {}).get("Columns", [])}
    partitions = {c.get("Name", "").lower() for c in found.get("PartitionKeys", [])}
    needed = [DATE, ACCOUNT, SERVICE, ITEM_TYPE, REGION, CURRENCY, *cost_columns(table.cost)]
    missing = [c for c in needed if c not in names | partitions]
    if missing:
        return False, (f"Glue table {table.name} lacks CUR 2.0 column(s) {', '.join(missing)}: "
                       f"{_FIX_TABLE}")
    if PARTITION not in partitions:
        return False, (f"Glue table {table.name} is not partitioned by {PARTITION} (found "
                       f"{', '.join(sorted(partitions)) or 'no partition'}): every query would "
                       f"scan the whole export; {_FIX_TABLE}")
    return True, (f"source: Athena table {table.name} (workgroup {workgroup}, results {where}), "
                  f"partitioned by {PARTITION}, cost {table.cost}; no query was run")


@dataclass(frozen=True)
class AthenaSource(CostSource):
    """A CUR 2.0 Data Export summed by Athena: one query a run, one more for root causes."""

    name: ClassVar[str] = SOURCE_NAME
    database: str
    table: str
    workgroup: str
    output: str
    cost: str
    line_item_types: str
    owner: OwnerKey | None = None
    timeout: float = settings.ATHENA_TIMEOUT_SECONDS
    client: Any = field(default=None, compare=False)  # a boto3 athena client (tests)

    @classmethod
    def from_options(cls, options: SourceOptions) -> AthenaSource:
        return cls(database=options.athena_database, table=options.athena_table,
                   workgroup=options.athena_workgroup, output=options.athena_output,
                   cost=options.cur_cost, line_item_types=options.cur_line_item_types,
                   owner=options.owner, timeout=options.athena_timeout)

    def validated(self) -> AthenaTable:
        """The validated table settings; the workgroup and result location are checked too."""
        table = AthenaTable.validated(self.database, self.table, self.cost,
                                      self.line_item_types, self.owner)
        if not _WORKGROUP.match(self.workgroup.strip()):
            raise ConfigError(
                f"SENTINEL_ATHENA_WORKGROUP={self.workgroup!r} is not an Athena workgroup name "
                "(letters, digits, ., _ and -, at most 128); unset it to use primary")
        if self.output and not self.output.startswith("s3://"):
            raise ConfigError(f"SENTINEL_ATHENA_OUTPUT={self.output!r} is not an s3:// URL: "
                              "set an s3://bucket/prefix/ for query results, or leave it unset "
                              "to use the workgroup's")
        return table

    def runner(self, table: AthenaTable) -> AthenaClient:
        return AthenaClient(workgroup=self.workgroup.strip(), database=table.database,
                            output=self.output, table=table.name, timeout=self.timeout,
                            client=self.client)

    def fetch(self, start: dt.date, end: dt.date) -> SourceResult:
        table = self.validated()
        return read_athena(table, self.runner(table), start, end)

    def root_causes(self, alerts: pd.DataFrame) -> RootCauses:
        table = self.validated()
        runner = self.runner(table)
        return RootCauses(athena_root_causes(table, runner, alerts), requests=runner.queries)

    def check(self, today: dt.date) -> Check:
        try:
            table = self.validated()
        except (ConfigError, SourceError) as exc:
            return False, str(exc)
        return check_table(table, self.workgroup.strip(), self.output, athena=self.client)
