"""The `cur` cost source: AWS CUR 2.0 (Data Exports) Parquet, aggregated to daily series.

Layout written by AWS Data Exports ("Understanding export delivery" in the Data Exports user
guide); SENTINEL_SOURCE_PATH points at ``<prefix>/<export-name>``, local or ``s3://``::

    <prefix>/<export-name>/data/BILLING_PERIOD=YYYY-MM/<export-name>-00001.snappy.parquet
    <prefix>/<export-name>/metadata/BILLING_PERIOD=YYYY-MM/<export-name>-Manifest.json

* One folder per billing period (a calendar month, UTC). With "overwrite" delivery AWS rewrites
  the period's files in place up to several times a day while the month is open, and keeps
  restating the previous period for some days after it closes (credits, refunds, RI and
  Savings Plans true-ups); the invoice is final a few days into the next month.
* The manifest is written after the data files of a delivery and lists them in ``dataFiles``
  (``s3://bucket/.../BILLING_PERIOD=YYYY-MM/<file>`` URLs; it also carries ``executionId`` and
  ``columns``). When a period has a manifest, only the files it lists are read, so files of
  a delivery still in progress are never mixed with the last complete one; a file it lists
  but that is gone means a rewrite is under way: the run stops, asking for a rerun. Without a
  manifest (files copied by hand, or a point at ``.../data``) every Parquet file is read.
* Columns read (the fixed CUR 2.0 schema): line_item_usage_start_date (UTC day of the line
  item), line_item_usage_account_id, line_item_product_code (the service, e.g. AmazonEC2: the
  code of the product that billed the line, present on every line item type, unlike
  product_servicecode which is empty on many fees and credits), product_region_code
  (empty -> "global"), line_item_currency_code, line_item_line_item_type, the cost columns
  below; for root causes also line_item_usage_type and line_item_resource_id (present only
  when the export includes resource IDs).

Cost measures (``SENTINEL_CUR_COST``):

* ``unblended`` (default): line_item_unblended_cost, what Cost Explorer shows as unblended.
* ``net_unblended``: line_item_net_unblended_cost (after EDP and other discounts).
* ``amortized``: the AWS / Cloud Intelligence Dashboards formula, matching Cost Explorer's
  amortized view: SavingsPlanCoveredUsage -> savings_plan_savings_plan_effective_cost;
  SavingsPlanRecurringFee -> its unused part (savings_plan_total_commitment_to_date -
  savings_plan_used_commitment); SavingsPlanNegation and SavingsPlanUpfrontFee -> 0 (already
  spread over the covered usage); DiscountedUsage -> reservation_effective_cost; RIFee -> its
  unused part (reservation_unused_amortized_upfront_fee_for_billing_period +
  reservation_unused_recurring_fee); an upfront RI Fee (Fee with a reservation ARN) -> 0;
  everything else -> line_item_unblended_cost.
* ``net_amortized``: the same with the net_ columns (savings_plan_net_savings_plan_effective_
  cost, reservation_net_effective_cost, reservation_net_unused_*, line_item_net_unblended_cost).

Line item types (``SENTINEL_CUR_LINE_ITEM_TYPES``, default Usage, DiscountedUsage,
SavingsPlanCoveredUsage: usage wherever it is billed from) are counted; every other type
(Credit, Refund, Tax, Fee, RIFee, SavingsPlanRecurringFee, SavingsPlanNegation, discounts...)
is left out of detection and reported per type, in the same cost measure, in
``rows.attrs["metadata"]`` with the files, bytes and line items read. With ``unblended``,
SavingsPlanCoveredUsage counts at its on-demand rate (its negation is left out), so a series
follows usage, not the moment a Savings Plan starts covering it; choose ``amortized`` to follow
the money.

Rows are flagged ``estimated`` while AWS may still rewrite their billing period: the open period
and the previous one until ``RESTATEMENT_GRACE_DAYS`` after it closes (UTC). The restatement
sensor re-requests such days, so rerunning a day re-reads the current files.

Reading: DuckDB sums the line items in [start, end] (only the needed columns; the date filter
pushed to the row groups), in two single-threaded scans side by side, each over a run of
consecutive files. A scan first sums the cost per raw line item type and currency (a dozen
groups), then only the kept types per day and raw service, account and region (per currency
too only if the kept items have several), so the big group-by carries neither key. Local files
are read by DuckDB itself; an S3 object is read by pyarrow and handed to DuckDB as Arrow
batches, one pass per file by type, so no DuckDB extension is ever downloaded. Each scan adds
its rows in file order and the partial sums are added in scan order, so reruns give
bit-identical sums (a multi-threaded DuckDB aggregate does not). Labels are cleaned on the
distinct values, not per line item. Anything that path does not handle (a column of an unusual
type, zoned and naive dates mixed, a damaged file, a null date, two currencies in a series, a
sum that overflows, any DuckDB error) sends the read to the pyarrow path, one file at a time in
1 M-row batches, which gives the same rows or raises the error naming the file, as before.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import math
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sentinel_pipeline import schema, settings
from sentinel_pipeline.errors import SourceError
from sentinel_pipeline.settings import OwnerKey
from sentinel_pipeline.sources import root_causes as rc
from sentinel_pipeline.sources.base import (
    Check,
    CostSource,
    RootCauses,
    SourceOptions,
    SourceResult,
)
from sentinel_pipeline.sources.exports import (
    DEFAULT_CURRENCY,
    GLOBAL_REGION,
    UNKNOWN,
    billing_periods,
    check_one_currency,
    daily_rows,
    month_after,
    open_filesystem,
    os_errors,
    sum_groups,
)
from sentinel_pipeline.sources.owners import owner_values

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection as DuckDBConnection

SOURCE_NAME = "cur"
COST_MEASURES: tuple[str, ...] = ("unblended", "net_unblended", "amortized", "net_amortized")
RESTATEMENT_GRACE_DAYS = 15

DATE = "line_item_usage_start_date"
ACCOUNT = "line_item_usage_account_id"
SERVICE = "line_item_product_code"
REGION = "product_region_code"
CURRENCY = "line_item_currency_code"
ITEM_TYPE = "line_item_line_item_type"
USAGE_TYPE = "line_item_usage_type"
RESOURCE = "line_item_resource_id"
RESERVATION_ARN = "reservation_reservation_a_r_n"
RESOURCE_TAGS = "resource_tags"  # map: user tag team -> key user_team, AWS tags aws_...
COST_CATEGORY = "cost_category"  # map: cost category name -> its value

_AMORTIZED_PARTS = {
    "amortized": {
        "base": "line_item_unblended_cost",
        "sp_effective": "savings_plan_savings_plan_effective_cost",
        "ri_effective": "reservation_effective_cost",
        "ri_unused_upfront": "reservation_unused_amortized_upfront_fee_for_billing_period",
        "ri_unused_recurring": "reservation_unused_recurring_fee",
    },
    "net_amortized": {
        "base": "line_item_net_unblended_cost",
        "sp_effective": "savings_plan_net_savings_plan_effective_cost",
        "ri_effective": "reservation_net_effective_cost",
        "ri_unused_upfront": "reservation_net_unused_amortized_upfront_fee_for_billing_period",
        "ri_unused_recurring": "reservation_net_unused_recurring_fee",
    },
}
_SP_COMMITMENT = "savings_plan_total_commitment_to_date"
_SP_USED = "savings_plan_used_commitment"

log = logging.getLogger(__name__)

_PERIOD_RE = re.compile(r"^BILLING_PERIOD=(\d{4})-(\d{2})$", re.IGNORECASE)
_BATCH_ROWS = 1 << 20
_MERGE_ROWS = 4_000_000
_GROUP_KEYS = ["usage_date", "service", "account_id", "region", "owner", "currency", "item_type"]
# Two single-threaded DuckDB scans side by side: a fixed number, so the order in which each
# group is summed (and so every last bit of the sums) never depends on the machine.
_WORKERS = 2
# One thread per connection; never fetch an extension (Parquet is built in; S3 is read by pyarrow).
_DUCKDB_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "threads": 1, "autoinstall_known_extensions": False, "autoload_known_extensions": False,
}
_FIX_PATH = (
    "set SENTINEL_SOURCE_PATH to the CUR 2.0 export folder <prefix>/<export-name> (local or "
    "s3://) that holds data/BILLING_PERIOD=YYYY-MM/*.parquet and metadata/"
)


def cost_columns(cost: str) -> list[str]:
    """The CUR 2.0 columns a cost measure needs (all part of the fixed CUR 2.0 schema)."""
    if cost == "unblended":
        return ["line_item_unblended_cost"]
    if cost == "net_unblended":
        return ["line_item_net_unblended_cost"]
    parts = _AMORTIZED_PARTS[cost]
    return [*parts.values(), _SP_COMMITMENT, _SP_USED, RESERVATION_ARN]


def parse_line_item_types(text: str | Sequence[str]) -> tuple[str, ...]:
    """'Usage, DiscountedUsage' -> ('usage', 'discountedusage'); empty is a config error."""
    items = text.split(",") if isinstance(text, str) else list(text)
    types = tuple(dict.fromkeys(t.strip().lower() for t in items if t.strip()))
    if not types:
        raise SourceError(
            "SENTINEL_CUR_LINE_ITEM_TYPES is empty: list the CUR line item types to count, "
            f"e.g. {settings.default('SENTINEL_CUR_LINE_ITEM_TYPES')}"
        )
    return types


def check_cost(cost: str) -> str:
    """The cost measure, validated before any file is touched."""
    value = cost.strip().lower()
    if value not in COST_MEASURES:
        raise SourceError(
            f"unknown SENTINEL_CUR_COST {cost!r}; choose one of {', '.join(COST_MEASURES)} "
            "(unblended is what the invoice shows before amortization)"
        )
    return value


def estimated_days(days: np.ndarray | Sequence[dt.date], today: dt.date) -> np.ndarray:
    """True for days whose billing period AWS may still rewrite (see module docstring)."""
    def open_period(day: dt.date) -> bool:
        return today < month_after(day) + dt.timedelta(days=RESTATEMENT_GRACE_DAYS)

    values = list(days)
    flags = {day: open_period(day) for day in set(values)}
    return np.array([flags[day] for day in values], dtype=bool)


def owner_lookup(owner: OwnerKey | None) -> tuple[str, tuple[str, ...]] | None:
    """The CUR 2.0 map column holding the owner and the keys to look up in it, first found
    wins: a tag ``team`` is ``user_team`` in ``resource_tags`` (the raw key is tried too, so
    ``tag:user_team`` or an ``aws_...`` key work as well); a cost category is its name in
    ``cost_category``."""
    if owner is None:
        return None
    if owner.kind == "tag":
        return RESOURCE_TAGS, tuple(dict.fromkeys((f"user_{owner.name}", owner.name)))
    return COST_CATEGORY, (owner.name,)


def check_export(path: str, cost: str, line_item_types: str) -> tuple[bool, str]:
    """For `sentinel doctor`: the settings are valid, the export can be listed, and a data
    file of its latest delivered period (as its manifest lists them) has the columns the
    cost measure needs, the usage date a timestamp: a folder of other Parquet fails here,
    naming the file."""
    try:
        check_cost(cost)
        parse_line_item_types(line_item_types)
        export = _Export.open(path)
        sampled = export.check_sample(cost)
    except SourceError as exc:
        return False, str(exc)
    periods = sorted(export.periods)
    manifests = sum(1 for p in export.periods.values() if p.manifest)
    return True, (f"source: CUR 2.0 export {path}, billing periods {periods[0]} to "
                  f"{periods[-1]} ({len(periods)}, {manifests} with a manifest), cost {cost}; "
                  f"the columns of {sampled} are as needed")


def read_cur(
    path: str,
    start: dt.date,
    end: dt.date,
    cost: str = settings.default("SENTINEL_CUR_COST"),
    line_item_types: str | Sequence[str] = settings.default("SENTINEL_CUR_LINE_ITEM_TYPES"),
    today: dt.date | None = None,
    owner: OwnerKey | None = None,
) -> SourceResult:
    """Daily cost per series for UTC days in [start, end] from a CUR 2.0 export under `path`.

    With an owner key, each series is also split by owner (``owner_lookup``); line items
    without it (or an export without the map column) are untagged, owner "".

    Returns `schema.RAW_COLUMNS` rows (source "cur") and metadata: files read and
    ignored, bytes and line items scanned, excluded cost per line item type. Raises
    SourceError, having returned nothing, on any missing period, file, column or mixed currency.
    """
    cost = check_cost(cost)
    keep = parse_line_item_types(line_item_types)
    if start > end:
        raise SourceError(f"start {start} is after end {end}; ask for a range with start <= end")
    today = today or dt.datetime.now(dt.UTC).date()
    export = _Export.open(path)
    files, stats = export.files_for(start, end)
    lookup = owner_lookup(owner)
    summed = _duckdb_sums(export, files, cost, keep, start, end, today, lookup)
    if summed is None:
        kept, excluded, scanned = _arrow_sums(export, files, cost, keep, start, end, lookup)
        summed = _finish(kept, today), excluded, scanned
    out, excluded, stats["line_items_scanned"] = summed
    stats["cost_measure"] = cost
    stats["line_item_types"] = ", ".join(keep)
    stats["excluded_cost_by_line_item_type"] = {k: round(v, 6) for k, v in excluded.items()}
    stats["estimated_days"] = int(out.loc[out["estimated"], "usage_date"].nunique())
    if owner is not None:
        stats["owner_key"] = str(owner)
        stats["untagged_cost"] = round(float(out.loc[out["owner"] == "", "cost"].sum()), 6)
    return SourceResult(out, {f"cur_{k}": v for k, v in stats.items()})


def cur_root_causes(
    path: str,
    anomalies: pd.DataFrame,
    cost: str = settings.default("SENTINEL_CUR_COST"),
    line_item_types: str | Sequence[str] = settings.default("SENTINEL_CUR_LINE_ITEM_TYPES"),
    owner: OwnerKey | None = None,
) -> list[str]:
    """JSON top contributors (region, usage type, resource) of each anomaly row, in order.

    One scan of the days [min D - 14, max D], filtered to the flagged services and accounts,
    grouped by day, series, usage type and resource; each anomaly is then ranked by
    root_causes.top_contributors.
    """
    if len(anomalies) == 0:
        return []
    cost = check_cost(cost)
    keep = parse_line_item_types(line_item_types)
    days, start, end = rc.window(anomalies)
    export = _Export.open(path)
    files, _ = export.files_for(start, end, missing_ok=True)
    services = sorted(set(anomalies["service"].astype(str)))
    accounts = sorted(set(anomalies["account_id"].astype(str)))
    needed = [DATE, ACCOUNT, SERVICE, ITEM_TYPE, USAGE_TYPE, *cost_columns(cost)]
    lookup = owner_lookup(owner)
    optional = [REGION, RESOURCE, *([lookup[0]] if lookup else [])]
    keys = ["usage_date", "service", "account_id", "region", "owner", "usage_type",
            "resource_id"]
    extra = pc.field(SERVICE).isin(services) & pc.field(ACCOUNT).isin(accounts)
    parts: list[pa.Table] = []
    for file in files:
        for batch in export.scan(file, needed, optional, start, end, extra):
            types = pc.utf8_lower(batch.column(ITEM_TYPE).cast(pa.string()))
            batch = batch.filter(pc.is_in(types, value_set=pa.array(list(keep))))
            if batch.num_rows == 0:
                continue
            table = pa.table({
                "usage_date": _days(batch.column(DATE), file.display),
                "service": batch.column(SERVICE).cast(pa.string()),
                "account_id": batch.column(ACCOUNT).cast(pa.string()),
                "region": _optional_text(batch, REGION),
                "owner": _owner_column(batch, lookup),
                "usage_type": batch.column(USAGE_TYPE).cast(pa.string()),
                "resource_id": _optional_text(batch, RESOURCE),
                "cost": pa.array(_cost(batch, cost, file.display)),
            })
            parts.append(table.group_by(keys, use_threads=False).aggregate([("cost", "sum")]))
    if not parts:
        return ["" for _ in range(len(anomalies))]
    detail = pa.concat_tables(parts).to_pandas()
    detail = detail.rename(columns={"cost_sum": "cost"})
    detail["region"] = _labels(detail["region"], GLOBAL_REGION)
    detail["owner"] = _labels(detail["owner"], "")
    detail["resource_id"] = detail["resource_id"].fillna("")
    detail["usage_type"] = detail["usage_type"].fillna("")
    by_series = dict(tuple(detail.groupby(schema.SERIES_KEY, sort=False)))
    return rc.rank_each(anomalies, days, by_series)


@dataclass(frozen=True)
class _File:
    """One Parquet data file of a billing period: where it is and how users see it."""

    path: str
    display: str
    size: int


@dataclass
class _Period:
    """What the listing found for one BILLING_PERIOD=YYYY-MM."""

    data_folder: str | None = None
    files: list[_File] = field(default_factory=list)
    other_files: list[str] = field(default_factory=list)
    manifest: str | None = None


@dataclass
class _Export:
    """One CUR 2.0 export: its filesystem and what is in each billing period."""

    path: str
    fs: pafs.FileSystem
    prefix: str
    periods: dict[str, _Period]

    @classmethod
    def open(cls, path: str) -> _Export:
        """List the export once (data and metadata); fail on anything but one CUR 2.0 export."""
        if not path:
            raise SourceError(f"SENTINEL_SOURCE=cur needs SENTINEL_SOURCE_PATH; {_FIX_PATH}")
        fs, root, prefix = open_filesystem(path)
        with os_errors(path, reading=False):
            info = fs.get_file_info(root)
            if info.type == pafs.FileType.NotFound:
                raise SourceError(f"cost source path {path!r} does not exist; {_FIX_PATH}")
            if info.type == pafs.FileType.File:
                raise SourceError(f"cost source path {path!r} is a file; {_FIX_PATH}")
            listing = fs.get_file_info(pafs.FileSelector(root, recursive=True))
        periods: dict[str, _Period] = {}
        exports: set[str] = set()
        for item in listing:
            parts = item.path.split("/")
            if any(p.startswith(("_", ".")) for p in parts[len(root.split("/")):] if p):
                continue
            hit = next((i for i, p in enumerate(parts) if _PERIOD_RE.match(p)), None)
            if hit is None or hit == 0:
                continue
            match = _PERIOD_RE.match(parts[hit])
            assert match is not None
            period = periods.setdefault(f"{match.group(1)}-{match.group(2)}", _Period())
            kind = parts[hit - 1].lower()
            folder = "/".join(parts[: hit + 1])
            if kind == "metadata":
                if item.type == pafs.FileType.File and parts[-1].endswith("Manifest.json"):
                    period.manifest = item.path
                continue
            exports.add("/".join(parts[: hit - 1]) if kind == "data" else "/".join(parts[:hit]))
            period.data_folder = period.data_folder or folder
            if item.type != pafs.FileType.File:
                continue
            if item.path.lower().endswith(".parquet"):
                period.files.append(_File(item.path, prefix + item.path, int(item.size or 0)))
            else:
                period.other_files.append(prefix + item.path)
        if len(exports) > 1:
            shown = ", ".join(prefix + e for e in sorted(exports)[:3])
            raise SourceError(
                f"{path!r} holds {len(exports)} CUR exports ({shown}); point "
                "SENTINEL_SOURCE_PATH at one export so no cost is counted twice"
            )
        if not periods:
            raise SourceError(
                f"no CUR 2.0 export under {path!r}: found no BILLING_PERIOD=YYYY-MM folder; "
                f"{_FIX_PATH}"
            )
        return cls(path, fs, prefix, periods)

    def files_for(
        self, start: dt.date, end: dt.date, missing_ok: bool = False
    ) -> tuple[list[_File], dict[str, object]]:
        """Data files of the billing periods covering [start, end], from their manifests."""
        files: list[_File] = []
        read_periods: list[str] = []
        ignored = 0
        without_manifest: list[str] = []
        for name in billing_periods(start, end):
            period = self.periods.get(name)
            if period is None or (period.data_folder is None and period.manifest is None):
                if missing_ok:
                    continue
                known = ", ".join(sorted(self.periods)) or "none"
                raise SourceError(
                    f"no CUR 2.0 data for billing period {name} under {self.path!r} (periods "
                    f"found: {known}); AWS delivers a new period within 24 hours of its start "
                    f"and back-fills earlier ones only on request: rerun later, or start the "
                    f"backfill at the first exported period"
                )
            chosen = self._manifest_files(name, period) if period.manifest else period.files
            if period.manifest is None:
                without_manifest.append(name)
            if not chosen and not period.manifest:
                where = self.prefix + (period.data_folder or name)
                others = (f" (found {len(period.other_files)} other file(s), e.g. "
                          f"{period.other_files[0]!r}: Sentinel reads CUR 2.0 exports in "
                          f"Parquet format; re-create the export with Parquet)"
                          if period.other_files else "")
                raise SourceError(
                    f"billing period folder {where} holds no Parquet files{others}; wait for "
                    f"AWS to deliver the period, or remove the empty folder"
                )
            ignored += len(period.files) - len(chosen)
            files.extend(sorted(chosen, key=lambda f: f.path))
            read_periods.append(name)
        stats: dict[str, object] = {
            "billing_periods": ", ".join(read_periods),
            "files_read": len(files),
            "files_not_in_manifest": ignored,
            "periods_without_manifest": ", ".join(without_manifest),
            "bytes_scanned": sum(f.size for f in files),
        }
        return files, stats

    def _manifest_files(self, name: str, period: _Period) -> list[_File]:
        """The files the period's manifest lists, matched by name to the files listed."""
        assert period.manifest is not None
        display = self.prefix + period.manifest
        with os_errors(display, reading=True):
            with self.fs.open_input_stream(period.manifest) as handle:
                text = handle.read().decode("utf-8", errors="replace")
        try:
            data_files = json.loads(text).get("dataFiles")
        except (ValueError, AttributeError):
            data_files = None
        if not isinstance(data_files, list) or not all(isinstance(f, str) for f in data_files):
            raise SourceError(
                f"{display} is not a CUR 2.0 manifest (no dataFiles list of file URLs); "
                f"remove it, or let the next AWS delivery rewrite it"
            )
        by_name = {f.path.rsplit("/", 1)[-1]: f for f in period.files}
        chosen = []
        for url in data_files:
            found = by_name.get(url.rsplit("/", 1)[-1])
            if found is None:
                raise SourceError(
                    f"{display} lists {url}, which is not under {self.path!r}: AWS is "
                    f"rewriting billing period {name} right now (or the files were moved); "
                    f"rerun in a few minutes"
                )
            chosen.append(found)
        return chosen

    def check_sample(self, cost: str) -> str:
        """For `sentinel doctor`: the schema of the first data file of the latest period that
        has files is what a run needs; the file checked, as users see it."""
        delivered = [name for name in sorted(self.periods) if self.periods[name].files]
        month = dt.date.fromisoformat(f"{(delivered or sorted(self.periods))[-1]}-01")
        files, _ = self.files_for(month, month)  # says why when the period has no file
        if not files:  # a manifest listing no file
            raise SourceError(f"no CUR 2.0 data file for billing period {month:%Y-%m} under "
                              f"{self.path!r}; {_FIX_PATH}")
        with os_errors(files[0].display, reading=True):
            self._dataset(files[0], [DATE, ACCOUNT, SERVICE, ITEM_TYPE, *cost_columns(cost)])
        return files[0].display

    def _dataset(self, file: _File, needed: list[str]) -> ds.Dataset:
        """The file as a dataset, once its schema has the needed columns and a timestamp
        usage date."""
        dataset = ds.dataset(file.path, filesystem=self.fs, format="parquet")
        names = dataset.schema.names
        missing = [c for c in needed if c not in names]
        if missing:
            raise SourceError(_missing_message(file.display, missing, names))
        kind = dataset.schema.field(DATE).type
        if not pa.types.is_timestamp(kind):
            raise SourceError(
                f"{file.display}: column {DATE} is {kind}, not a timestamp; CUR 2.0 "
                f"Parquet stores it as a timestamp: re-export the file from AWS Data Exports"
            )
        return dataset

    def scan(
        self,
        file: _File,
        needed: list[str],
        optional: list[str],
        start: dt.date,
        end: dt.date,
        extra: pc.Expression | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """The file's line items in [start, end] (and `extra`), only the columns asked for."""
        with os_errors(file.display, reading=True):
            dataset = self._dataset(file, needed)
            names = dataset.schema.names
            kind = dataset.schema.field(DATE).type
            zone = dt.UTC if kind.tz else None
            first = dt.datetime(start.year, start.month, start.day, tzinfo=zone)
            last = first + dt.timedelta(days=(end - start).days + 1)
            date = pc.field(DATE)
            where = ((date >= pa.scalar(first, kind)) & (date < pa.scalar(last, kind))) | (
                date.is_null())
            if extra is not None:
                where = where & extra
            columns = needed + [c for c in optional if c in names]
            # Little read-ahead: the default (16 batches) would hold ~16 M decoded rows.
            for batch in dataset.to_batches(columns=columns, filter=where,
                                            batch_size=_BATCH_ROWS, batch_readahead=4,
                                            fragment_readahead=1):
                if batch.num_rows:
                    yield batch

    def reader(
        self, file: _File, needed: list[str], optional: list[str], start: dt.date, end: dt.date
    ) -> pa.RecordBatchReader:
        """scan() as a stream DuckDB can read in-process (how the DuckDB path reads S3)."""
        batches = self.scan(file, needed, optional, start, end)
        first = next(batches, None)
        if first is None:
            found = self._dataset(file, needed).schema
            names = needed + [c for c in optional if c in found.names]
            return pa.schema([found.field(c) for c in names]).empty_table().to_reader()
        return pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))


def _missing_message(display: str, missing: list[str], names: list[str]) -> str:
    """Which columns a file lacks and how to get an export that has them."""
    shown = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
    return (
        f"{display}: missing CUR 2.0 column(s) {', '.join(missing)}; columns found: "
        f"{shown or '(none)'}. Sentinel reads CUR 2.0 exports of AWS Data Exports (table "
        f"COST_AND_USAGE_REPORT, all columns); re-create the export with these columns, or "
        f"choose a SENTINEL_CUR_COST whose columns the export has"
    )


def _days(column: pa.ChunkedArray | pa.Array, display: str) -> pa.Array:
    """UTC calendar day of each timestamp (zoned values are UTC instants; naive ones are UTC)."""
    if column.null_count:
        raise SourceError(
            f"{display}: {column.null_count} line item(s) have no {DATE}; the file is damaged: "
            f"re-export it from AWS Data Exports"
        )
    unit = column.type.unit
    per_day = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}
    ticks = column.cast(pa.timestamp(unit)).cast(pa.int64())
    return pc.divide(ticks, per_day[unit]).cast(pa.int32()).cast(pa.date32())


def _number(batch: pa.RecordBatch, name: str, display: str) -> np.ndarray:
    """A cost column as float64 with null as 0.0 (CUR leaves non-applicable costs empty)."""
    column = batch.column(name)
    kind = column.type
    if not (pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind)):
        try:
            column = column.cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise SourceError(
                f"{display}: column {name} holds {kind} values that are not numbers ({err}); "
                f"CUR 2.0 Parquet stores costs as double: re-export the file"
            ) from err
    return column.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)


def _cost(batch: pa.RecordBatch, cost: str, display: str) -> np.ndarray:
    """The cost measure of each line item (see the module docstring for the formulas)."""
    if cost in ("unblended", "net_unblended"):
        return _number(batch, cost_columns(cost)[0], display)
    parts = _AMORTIZED_PARTS[cost]
    kinds = batch.column(ITEM_TYPE).cast(pa.string())

    def is_type(name: str) -> np.ndarray:
        return pc.fill_null(pc.equal(kinds, name), False).to_numpy(zero_copy_only=False)

    arn = batch.column(RESERVATION_ARN).cast(pa.string())
    has_arn = pc.fill_null(pc.not_equal(arn, ""), False).to_numpy(zero_copy_only=False)
    num = {key: _number(batch, col, display) for key, col in parts.items()}
    sp_unused = _number(batch, _SP_COMMITMENT, display) - _number(batch, _SP_USED, display)
    conditions = [
        is_type("SavingsPlanCoveredUsage"),
        is_type("SavingsPlanRecurringFee"),
        is_type("SavingsPlanNegation") | is_type("SavingsPlanUpfrontFee"),
        is_type("DiscountedUsage"),
        is_type("RIFee"),
        is_type("Fee") & has_arn,
    ]
    choices = [
        num["sp_effective"],
        sp_unused,
        np.zeros(batch.num_rows),
        num["ri_effective"],
        num["ri_unused_upfront"] + num["ri_unused_recurring"],
        np.zeros(batch.num_rows),
    ]
    return np.select(conditions, choices, default=num["base"])


def _optional_text(batch: pa.RecordBatch, name: str) -> pa.Array:
    """A text column, or nulls when the export does not have it."""
    if name in batch.schema.names:
        return batch.column(name).cast(pa.string())
    return pa.nulls(batch.num_rows, pa.string())


def _owner_column(batch: pa.RecordBatch, lookup: tuple[str, tuple[str, ...]] | None) -> pa.Array:
    """The raw owner of each line item (null: untagged, or no owner key / map column)."""
    if lookup is None or lookup[0] not in batch.schema.names:
        return pa.nulls(batch.num_rows, pa.string())
    column, names = lookup
    return owner_values(batch.column(column), names)


def _sum_batch(batch: pa.RecordBatch, cost: str, display: str,
               lookup: tuple[str, tuple[str, ...]] | None = None) -> pa.Table:
    """One batch summed per day, raw labels, currency and line item type (labels are cleaned
    after aggregation, on thousands of rows instead of millions)."""
    table = pa.table({
        "usage_date": _days(batch.column(DATE), display),
        "service": batch.column(SERVICE).cast(pa.string()),
        "account_id": batch.column(ACCOUNT).cast(pa.string()),
        "region": _optional_text(batch, REGION),
        "owner": _owner_column(batch, lookup),
        "currency": _optional_text(batch, CURRENCY),
        "item_type": batch.column(ITEM_TYPE).cast(pa.string()),
        "cost": pa.array(_cost(batch, cost, display)),
    })
    return _merge([table])


def _merge(parts: list[pa.Table]) -> pa.Table:
    """Sum partial tables per group key."""
    return sum_groups(pa.concat_tables(parts) if len(parts) > 1 else parts[0], _GROUP_KEYS)


def _labels(column: pd.Series, default: str, case: str | None = None) -> pd.Series:
    """Trimmed text; null, "" and "NULL" become the default."""
    text = column.astype("string").str.strip()
    if case == "upper":
        text = text.str.upper()
    text = text.mask(text.isna() | (text == "") | (text == "NULL"), default)
    return text.astype(object)


def _combine(parts: list[pa.Table], currency_files: dict[str, set[str]]) -> pd.DataFrame:
    """The partial sums as one frame with clean labels; `file` names the files holding each
    currency, for the mixed-currency message."""
    if not parts:
        frame = pd.DataFrame({c: pd.Series(dtype="object") for c in [*_GROUP_KEYS, "file"]})
        frame["cost"] = pd.Series(dtype="float64")
        return frame
    frame = _merge(parts).to_pandas()
    frame["service"] = _labels(frame["service"], UNKNOWN)
    frame["account_id"] = _labels(frame["account_id"], UNKNOWN)
    frame["region"] = _labels(frame["region"], GLOBAL_REGION)
    frame["owner"] = _labels(frame["owner"], "")
    frame["currency"] = _labels(frame["currency"], DEFAULT_CURRENCY, "upper")
    frame["item_type"] = _labels(frame["item_type"], UNKNOWN)
    frame = frame.groupby(_GROUP_KEYS, as_index=False, sort=False)["cost"].sum()
    shown = {c: ", ".join(sorted(f)) for c, f in currency_files.items()}
    frame["file"] = frame["currency"].map(shown).fillna("")
    return frame


# What both paths return: rows (the pyarrow path: the kept rows per day, series, currency and
# a `file` column naming the files of each currency, for its error messages; the DuckDB path:
# raw_daily_costs), the excluded cost per line item type, the line items in the range.
_Sums = tuple[pd.DataFrame, dict[str, float], int]


def _arrow_sums(
    export: _Export, files: list[_File], cost: str, keep: tuple[str, ...], start: dt.date,
    end: dt.date, lookup: tuple[str, tuple[str, ...]] | None = None,
) -> _Sums:
    """The pyarrow path: each file in 1 M-row batches summed as they stream. Raises the
    SourceError that names the file for every kind of bad input."""
    needed = [DATE, ACCOUNT, SERVICE, ITEM_TYPE, *cost_columns(cost)]
    optional = [REGION, CURRENCY, *([lookup[0]] if lookup else [])]
    pending: list[pa.Table] = []
    pending_rows = scanned = 0
    currency_files: dict[str, set[str]] = {}
    for file in files:
        for batch in export.scan(file, needed, optional, start, end):
            scanned += batch.num_rows
            part = _sum_batch(batch, cost, file.display, lookup)
            for currency in pc.unique(part["currency"]).to_pylist():
                currency_files.setdefault(str(currency or "").strip().upper() or
                                          DEFAULT_CURRENCY, set()).add(file.display)
            pending.append(part)
            pending_rows += part.num_rows
            if pending_rows > _MERGE_ROWS:  # keep memory at a few series-days tables
                pending = [_merge(pending)]
                pending_rows = pending[0].num_rows
    rows = _combine(pending, currency_files)
    kept_mask = rows["item_type"].str.lower().isin(keep)
    excluded = rows[~kept_mask].groupby("item_type", sort=True)["cost"].sum()
    kept = rows[kept_mask]
    check_one_currency(kept, export.path, start, end)
    return kept, {str(k): float(v) for k, v in excluded.items()}, scanned


@dataclass(frozen=True)
class _Scan:
    """What one single-threaded DuckDB scan reads: local files by path, or one S3 file as
    Arrow batches; which optional columns any of them has; whether a usage date may be null
    (Parquet statistics say none is in most files: the filter is then simpler)."""

    files: tuple[_File, ...]
    local: bool
    optional: frozenset[str]
    nulls: bool


@dataclass(frozen=True)
class _Partial:
    """One scan's sums: the kept line items per day and raw labels (each label column
    dictionary-encoded by the scan's own thread), the excluded cost per clean line item type,
    the line items in the range and how many of them have no date."""

    kept: pa.Table
    labels: dict[str, pa.DictionaryArray]
    excluded: dict[str, float]
    scanned: int
    undated: int


_LABEL_DEFAULTS = {"service": UNKNOWN, "account_id": UNKNOWN, "region": GLOBAL_REGION,
                   "owner": "", "currency": DEFAULT_CURRENCY}


def _duckdb_sums(
    export: _Export, files: list[_File], cost: str, keep: tuple[str, ...], start: dt.date,
    end: dt.date, today: dt.date, lookup: tuple[str, tuple[str, ...]] | None = None,
) -> _Sums | None:
    """The DuckDB path (see the module docstring): raw_daily_costs rows; None sends the read
    to the pyarrow path, which then gives the rows or the error naming the file. The owner is
    looked up in SQL (``map['key']``) and is one more label, like the region."""
    import duckdb  # ~0.1 s to import: only when a CUR export is read

    needed = [DATE, ACCOUNT, SERVICE, ITEM_TYPE, *cost_columns(cost)]

    def run(scan: _Scan, zoned: bool) -> _Partial:
        sql = _Sql(scan, cost, zoned, start, end, lookup)
        with duckdb.connect(config=_DUCKDB_CONFIG) as con:
            con.execute("SET TimeZone = 'UTC'")  # a zoned timestamp's DATE is its UTC day
            if scan.local:
                return _local_partial(con, sql, [f.path for f in scan.files], keep)
            optional = sorted(scan.optional)
            con.register("line_items", export.reader(scan.files[0], needed, optional, start,
                                                     end))
            return _split_types(con.sql(sql.by_type("line_items")).to_arrow_table(), keep)

    try:
        plan = _plan_scans(export, files, needed, lookup[0] if lookup else None)
        if plan is None:
            return None
        scans, zoned = plan
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            parts = list(pool.map(lambda scan: run(scan, zoned), scans))
    except Exception as err:  # the pyarrow path reads again and names the problem
        log.info("CUR export %s: DuckDB did not sum it (%s); reading it with pyarrow",
                 export.path, err)
        return None
    return _merge_sums(parts, today)


def _plan_scans(
    export: _Export, files: list[_File], needed: list[str], owner_column: str | None = None,
) -> tuple[list[_Scan], bool] | None:
    """The scans of these files and whether their usage dates are zoned; None when a file has
    a column DuckDB might read otherwise than pyarrow (labels that are not text, costs that are
    not floating point, an owner map that is not text to text), or zoned and naive dates are
    mixed. Raises on a missing column."""
    labels = {ACCOUNT, SERVICE, ITEM_TYPE, REGION, CURRENCY, RESERVATION_ARN}
    zones: set[bool] = set()
    scans: list[_Scan] = []
    for file in files:
        schema = export._dataset(file, needed).schema
        zones.add(schema.field(DATE).type.tz is not None)
        for name in [*needed, REGION, CURRENCY]:
            if name == DATE or name not in schema.names:
                continue
            kind = schema.field(name).type
            kind = kind.value_type if pa.types.is_dictionary(kind) else kind
            text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
            if not (text if name in labels else pa.types.is_float64(kind)
                    or pa.types.is_float32(kind)):
                return None
        if owner_column is not None and owner_column in schema.names:
            kind = schema.field(owner_column).type
            if not (pa.types.is_map(kind) and pa.types.is_string(kind.key_type)
                    and pa.types.is_string(kind.item_type)):
                return None
        optional = frozenset(c for c in (REGION, CURRENCY, owner_column)
                             if c is not None and c in schema.names)
        local = isinstance(export.fs, pafs.LocalFileSystem)
        if local and any(c in file.path for c in "*?[{"):  # DuckDB would take it as a glob
            return None
        scans.append(_Scan((file,), local, optional, not local or _may_have_null_dates(
            export, file)))
    if len(zones) > 1:
        return None
    zoned = zones == {True}
    if scans and scans[0].local:  # _WORKERS runs of consecutive files, of similar sizes
        total, done, runs = sum(f.size + 1 for f in files), 0, list[_Scan]()
        for scan in scans:
            if not runs or done >= total * len(runs) / _WORKERS:
                runs.append(_Scan((), True, frozenset(), False))
            last = runs[-1]
            runs[-1] = _Scan((*last.files, *scan.files), True, last.optional | scan.optional,
                             last.nulls or scan.nulls)
            done += scan.files[0].size + 1
        scans = runs
    return scans, zoned


def _may_have_null_dates(export: _Export, file: _File) -> bool:
    """False when the Parquet statistics of every row group count no null usage date."""
    metadata = pq.read_metadata(file.path, filesystem=export.fs)
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        column = next((row_group.column(i) for i in range(row_group.num_columns)
                       if row_group.column(i).path_in_schema == DATE), None)
        stats = column.statistics if column is not None else None
        if stats is None or not stats.has_null_count or stats.null_count:
            return True
    return False


@dataclass(frozen=True)
class _Sql:
    """The queries of one scan: its date range, optional columns and cost measure."""

    scan: _Scan
    cost: str
    zoned: bool
    start: dt.date
    end: dt.date
    lookup: tuple[str, tuple[str, ...]] | None = None

    def column(self, name: str) -> str:
        return f'"{name}"' if name in self.scan.optional else "CAST(NULL AS VARCHAR)"

    def owner(self) -> str:
        """`, <owner> AS owner` when an owner key is set: the first of its keys found in the
        map with a non-blank value (untagged: NULL, labelled "" later); else nothing."""
        if self.lookup is None:
            return ""
        column, names = self.lookup
        if column not in self.scan.optional:
            return ", CAST(NULL AS VARCHAR) AS owner"
        values = [f"""NULLIF(TRIM("{column}"['{n.replace("'", "''")}']), '')""" for n in names]
        found = values[0] if len(values) == 1 else f"COALESCE({', '.join(values)})"
        return f", {found} AS owner"

    def in_range(self, nulls: bool) -> str:
        kind = "TIMESTAMPTZ" if self.zoned else "TIMESTAMP"
        zone = "+00" if self.zoned else ""
        first = f"{kind} '{self.start.isoformat()} 00:00:00{zone}'"
        last = f"{kind} '{(self.end + dt.timedelta(days=1)).isoformat()} 00:00:00{zone}'"
        where = f'("{DATE}" >= {first} AND "{DATE}" < {last})'
        return where + (f' OR "{DATE}" IS NULL' if nulls and self.scan.nulls else "")

    def types(self, source: str) -> str:
        """Cost and line items per raw line item type and currency; those without a date."""
        return f"""
            SELECT "{ITEM_TYPE}" AS item_type, {self.column(CURRENCY)} AS currency,
                   {_cost_sum_sql(self.cost)} AS cost, COUNT(*) AS line_items,
                   COUNT(*) - COUNT("{DATE}") AS undated
            FROM {source} WHERE {self.in_range(nulls=True)} GROUP BY ALL"""

    def kept(self, source: str, types: int, null_type: bool, by_currency: bool) -> str:
        """Cost per day and raw labels of the line items whose raw type is one of the
        parameters $t0..; by currency only when the kept line items have more than one."""
        listed = [f"$t{i}" for i in range(types)]
        chosen = " OR ".join(([f'"{ITEM_TYPE}" IN ({", ".join(listed)})'] if listed else [])
                             + ([f'"{ITEM_TYPE}" IS NULL'] if null_type else []))
        currency = f", {self.column(CURRENCY)} AS currency" if by_currency else ""
        return f"""
            SELECT CAST("{DATE}" AS DATE) AS usage_date, "{SERVICE}" AS service,
                   "{ACCOUNT}" AS account_id, {self.column(REGION)} AS region
                   {self.owner()}{currency},
                   {_cost_sum_sql(self.cost)} AS cost
            FROM {source} WHERE ({self.in_range(nulls=False)}) AND ({chosen}) GROUP BY ALL"""

    def by_type(self, source: str) -> str:
        """Both at once, per day, raw labels, currency and line item type (one pass: how an
        S3 file streamed from pyarrow is read)."""
        return f"""
            SELECT CAST("{DATE}" AS DATE) AS usage_date, "{SERVICE}" AS service,
                   "{ACCOUNT}" AS account_id, {self.column(REGION)} AS region{self.owner()},
                   {self.column(CURRENCY)} AS currency, "{ITEM_TYPE}" AS item_type,
                   {_cost_sum_sql(self.cost)} AS cost, COUNT(*) AS line_items
            FROM {source} WHERE {self.in_range(nulls=True)} GROUP BY ALL"""


def _cost_sum_sql(cost: str) -> str:
    """The sum of the cost measure in SQL, term for term as _cost computes it (a null cost
    is 0: SUM skips it, which adds the same)."""
    def number(name: str) -> str:
        return f'COALESCE(CAST("{name}" AS DOUBLE), 0.0)'

    if cost in ("unblended", "net_unblended"):
        return f'COALESCE(SUM(CAST("{cost_columns(cost)[0]}" AS DOUBLE)), 0.0)'
    parts = _AMORTIZED_PARTS[cost]
    kind = f'"{ITEM_TYPE}"'
    return f"""SUM(CASE
        WHEN {kind} = 'SavingsPlanCoveredUsage' THEN {number(parts["sp_effective"])}
        WHEN {kind} = 'SavingsPlanRecurringFee'
            THEN {number(_SP_COMMITMENT)} - {number(_SP_USED)}
        WHEN {kind} IN ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') THEN 0.0
        WHEN {kind} = 'DiscountedUsage' THEN {number(parts["ri_effective"])}
        WHEN {kind} = 'RIFee'
            THEN {number(parts["ri_unused_upfront"])} + {number(parts["ri_unused_recurring"])}
        WHEN {kind} = 'Fee' AND COALESCE("{RESERVATION_ARN}" <> '', FALSE) THEN 0.0
        ELSE {number(parts["base"])} END)"""


def _type_names(raw: list[str | None]) -> list[str]:
    """Clean line item types, as _combine labels them."""
    return [str(t) for t in _labels(pd.Series(raw, dtype=object), UNKNOWN)]


def _local_partial(con: DuckDBConnection, sql: _Sql, paths: list[str], keep: tuple[str, ...]
                   ) -> _Partial:
    """Local files, two passes: cost per raw line item type and currency first (cheap: three
    or four columns, a dozen groups), then the kept types per day and series alone, which
    spares the big group-by the type and, with one currency, the currency."""
    source = "read_parquet($files, union_by_name = true, hive_partitioning = false)"
    totals = con.sql(sql.types(source), params={"files": paths}).to_arrow_table()
    scanned = int(pc.sum(totals["line_items"]).as_py() or 0)
    undated = int(pc.sum(totals["undated"]).as_py() or 0)
    raw_types = totals["item_type"].to_pylist()
    names = _type_names(raw_types)
    is_kept = [name.lower() in keep for name in names]
    excluded: dict[str, float] = {}
    for name, kept, value in zip(names, is_kept, totals["cost"].to_pylist(), strict=True):
        if not kept:
            excluded[name] = excluded.get(name, 0.0) + value
    kept_types = sorted({t for t, k in zip(raw_types, is_kept, strict=True)
                         if k and t is not None})
    null_type = any(k and t is None for t, k in zip(raw_types, is_kept, strict=True))
    currencies = {c for c, k in zip(_labels(pd.Series(totals["currency"].to_pylist(),
                                                      dtype=object), DEFAULT_CURRENCY, "upper"),
                                    is_kept, strict=True) if k}
    if undated or not currencies:
        return _Partial(pa.table({"usage_date": pa.array([], pa.date32()),
                                  "cost": pa.array([], pa.float64())}),
                        {c: pa.array([], pa.string()).dictionary_encode()
                         for c in _LABEL_DEFAULTS}, excluded, scanned, undated)
    params: dict[str, object] = {"files": paths}
    params.update({f"t{i}": t for i, t in enumerate(kept_types)})
    query = sql.kept(source, len(kept_types), null_type, by_currency=len(currencies) > 1)
    kept_table = con.sql(query, params=params).to_arrow_table()
    labels = {c: pc.dictionary_encode(kept_table[c].combine_chunks())
              for c in _LABEL_DEFAULTS if c in kept_table.column_names}
    if "currency" not in labels:  # one (clean) currency: every row has it
        labels["currency"] = _constant(kept_table.num_rows, list(currencies)[0])
    if "owner" not in labels:  # no owner key: every row is unowned
        labels["owner"] = _constant(kept_table.num_rows, "")
    return _Partial(kept_table.select(["usage_date", "cost"]), labels, excluded, scanned, 0)


def _constant(rows: int, value: str) -> pa.DictionaryArray:
    """A label column holding one value on every row."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)),
                                          pa.array([value], pa.string()))


def _split_types(table: pa.Table, keep: tuple[str, ...]) -> _Partial:
    """A one-pass table (sums per day, raw labels, currency and type) as a _Partial."""
    encoded = pc.dictionary_encode(table["item_type"].combine_chunks())
    names = _type_names([*encoded.dictionary.to_pylist(), None])
    is_kept = np.array([name.lower() in keep for name in names], dtype=bool)
    codes = encoded.indices.fill_null(len(names) - 1).to_numpy(zero_copy_only=False)
    kept = is_kept[codes]
    cost = table["cost"].to_numpy()
    present = np.bincount(codes[~kept], minlength=len(names))
    sums = np.bincount(codes[~kept], weights=cost[~kept], minlength=len(names))
    excluded: dict[str, float] = {}
    for code in np.flatnonzero(present):
        excluded[names[code]] = excluded.get(names[code], 0.0) + float(sums[code])
    undated = table.filter(pc.is_null(table["usage_date"]))
    rows = table.filter(pa.array(kept))
    return _Partial(rows.select(["usage_date", "cost"]),
                    {c: pc.dictionary_encode(rows[c].combine_chunks())
                     if c in rows.column_names else _constant(rows.num_rows, "")
                     for c in _LABEL_DEFAULTS},
                    excluded, int(pc.sum(table["line_items"]).as_py() or 0),
                    int(pc.sum(undated["line_items"]).as_py() or 0))


def _clean_codes(encoded: list[pa.DictionaryArray], default: str, case: str | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Label columns (one per scan, dictionary-encoded) as one array of codes into the sorted
    clean values: _labels runs on each distinct raw value, so " x" and "x" get one code."""
    raw = pd.Series([v for e in encoded for v in e.dictionary.to_pylist()] + [None],
                    dtype=object)
    clean = _labels(raw, default, case).astype(str).to_numpy()
    names, inverse = np.unique(clean, return_inverse=True)
    inverse = inverse.reshape(-1)
    codes, offset = [], 0
    for e in encoded:
        size = len(e.dictionary)
        mapping = np.append(inverse[offset:offset + size], inverse[-1])  # null: the last
        codes.append(mapping[e.indices.fill_null(size).to_numpy(zero_copy_only=False)])
        offset += size
    return np.concatenate(codes), np.array(names.tolist(), dtype=object)


def _sum_by(keys: np.ndarray, values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys (sorted) and the sum of the values of each, added in row order."""
    if size <= 4 * len(keys) + (1 << 20):  # dense enough: no sort
        counts = np.bincount(keys, minlength=size)
        groups = np.flatnonzero(counts)
        return groups, np.bincount(keys, weights=values, minlength=size)[groups]
    groups, inverse = np.unique(keys, return_inverse=True)
    return groups, np.bincount(inverse.reshape(-1), weights=values, minlength=len(groups))


def _merge_sums(parts: list[_Partial], today: dt.date) -> _Sums | None:
    """The scans' partial sums added in scan order with clean labels: raw_daily_costs rows
    (one per day, series and currency: no regrouping, and already in their order) and the
    excluded cost per line item type. None (the pyarrow path raises the error) on a line item
    without a date, a series in two currencies or a sum that is not finite."""
    if any(p.undated for p in parts):
        return None
    scanned = sum(p.scanned for p in parts)
    totals: dict[str, float] = {}
    for part in parts:
        for name, value in part.excluded.items():
            totals[name] = totals.get(name, 0.0) + value
    excluded = {name: totals[name] for name in sorted(totals)}
    table = pa.concat_tables([p.kept for p in parts]) if parts else None
    if table is None or table.num_rows == 0:
        return schema.empty_frame(schema.RAW_COLUMNS), excluded, scanned
    day = table["usage_date"].cast(pa.int32()).to_numpy()
    codes, names = {}, {}
    for name, default in _LABEL_DEFAULTS.items():
        codes[name], names[name] = _clean_codes(
            [p.labels[name] for p in parts], default, "upper" if name == "currency" else None)
    first = int(day.min())
    dims = (int(day.max()) - first + 1, *(len(names[c]) for c in _LABEL_DEFAULTS))
    if math.prod(dims) >= 2**62:  # the group key would not fit in an int64
        return None
    keys = np.ravel_multi_index((day - first, *(codes[c] for c in _LABEL_DEFAULTS)), dims)
    groups, sums = _sum_by(keys, table["cost"].to_numpy(), math.prod(dims))
    if not np.isfinite(sums).all():
        return None
    days, s, a, r, o, c = np.unravel_index(groups, dims)
    series = np.ravel_multi_index((s, a, r, o), dims[1:5])
    if len(np.unique(series)) != len(np.unique(series * dims[5] + c)):
        return None  # a series with costs in two currencies
    # Keys ascend in (day, service, account, region, owner) order, codes being sorted names: the
    # order daily_rows sorts raw_daily_costs in.
    dates = np.array([dt.date(1970, 1, 1) + dt.timedelta(days=first + d)
                      for d in range(dims[0])], dtype=object)
    text = {c: pd.array(names[c], dtype=pd.StringDtype()) for c in _LABEL_DEFAULTS}
    rows = pd.DataFrame({
        "usage_date": dates[days], "service": text["service"].take(s),
        "account_id": text["account_id"].take(a), "region": text["region"].take(r),
        "owner": text["owner"].take(o), "cost": sums, "currency": text["currency"].take(c),
        "estimated": estimated_days(list(dates), today)[days], "source": SOURCE_NAME,
    })
    return schema.conform(rows, schema.RAW_COLUMNS), excluded, scanned


def _finish(rows: pd.DataFrame, today: dt.date) -> pd.DataFrame:
    """Sum the kept line items per series and day, flagging the open billing periods."""
    return daily_rows(rows, SOURCE_NAME, lambda days: estimated_days(days, today))


@dataclass(frozen=True)
class CurSource(CostSource):
    """AWS CUR 2.0 (Data Exports) Parquet files, summed to daily series; alerts drilled down
    by region, usage type and resource from the same files."""

    name: ClassVar[str] = SOURCE_NAME
    path: str
    cost: str
    line_item_types: str
    owner: OwnerKey | None = None

    @classmethod
    def from_options(cls, options: SourceOptions) -> CurSource:
        return cls(path=options.path, cost=options.cur_cost,
                   line_item_types=options.cur_line_item_types, owner=options.owner)

    def fetch(self, start: dt.date, end: dt.date) -> SourceResult:
        return read_cur(self.path, start, end, self.cost, self.line_item_types,
                        owner=self.owner)

    def root_causes(self, alerts: pd.DataFrame) -> RootCauses:
        return RootCauses(cur_root_causes(self.path, alerts, self.cost, self.line_item_types,
                                          owner=self.owner))

    def check(self, today: dt.date) -> Check:
        return check_export(self.path, self.cost, self.line_item_types)
