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

Reading uses pyarrow datasets, one file at a time: only the needed columns, a filter on
line_item_usage_start_date pushed to the row groups, batches summed per series, day, currency
and line item type as they stream, so memory follows the number of series-days.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from sentinel_pipeline import schema, settings
from sentinel_pipeline.errors import SourceError
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
    check_one_currency,
    daily_rows,
    month_after,
    open_filesystem,
    os_errors,
    sum_groups,
)

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

_PERIOD_RE = re.compile(r"^BILLING_PERIOD=(\d{4})-(\d{2})$", re.IGNORECASE)
_BATCH_ROWS = 1 << 20
_MERGE_ROWS = 4_000_000
_GROUP_KEYS = ["usage_date", "service", "account_id", "region", "currency", "item_type"]
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
) -> SourceResult:
    """Daily cost per series for UTC days in [start, end] from a CUR 2.0 export under `path`.

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
    needed = [DATE, ACCOUNT, SERVICE, ITEM_TYPE, *cost_columns(cost)]
    optional = [REGION, CURRENCY]
    pending: list[pa.Table] = []
    pending_rows = scanned = 0
    currency_files: dict[str, set[str]] = {}
    for file in files:
        for batch in export.scan(file, needed, optional, start, end):
            scanned += batch.num_rows
            part = _sum_batch(batch, cost, file.display)
            for currency in pc.unique(part["currency"]).to_pylist():
                currency_files.setdefault(str(currency or "").strip().upper() or
                                          DEFAULT_CURRENCY, set()).add(file.display)
            pending.append(part)
            pending_rows += part.num_rows
            if pending_rows > _MERGE_ROWS:  # keep memory at a few series-days tables
                pending = [_merge(pending)]
                pending_rows = pending[0].num_rows
    stats["line_items_scanned"] = scanned
    rows = _combine(pending, currency_files)
    kept_mask = rows["item_type"].str.lower().isin(keep)
    excluded = rows[~kept_mask].groupby("item_type", sort=True)["cost"].sum()
    kept = rows[kept_mask]
    check_one_currency(kept, path, start, end)
    out = _finish(kept, today)
    stats["cost_measure"] = cost
    stats["line_item_types"] = ", ".join(keep)
    stats["excluded_cost_by_line_item_type"] = {str(k): round(float(v), 6)
                                                for k, v in excluded.items()}
    stats["estimated_days"] = int(out.loc[out["estimated"], "usage_date"].nunique())
    return SourceResult(out, {f"cur_{k}": v for k, v in stats.items()})


def cur_root_causes(
    path: str,
    anomalies: pd.DataFrame,
    cost: str = settings.default("SENTINEL_CUR_COST"),
    line_item_types: str | Sequence[str] = settings.default("SENTINEL_CUR_LINE_ITEM_TYPES"),
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
    optional = [REGION, RESOURCE]
    keys = ["usage_date", "service", "account_id", "region", "usage_type", "resource_id"]
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
        for name in _months(start, end):
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


def _months(start: dt.date, end: dt.date) -> list[str]:
    """YYYY-MM of every month touching [start, end]."""
    out, month = [], start.replace(day=1)
    while month <= end:
        out.append(f"{month:%Y-%m}")
        month = month_after(month)
    return out


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


def _sum_batch(batch: pa.RecordBatch, cost: str, display: str) -> pa.Table:
    """One batch summed per day, raw labels, currency and line item type (labels are cleaned
    after aggregation, on thousands of rows instead of millions)."""
    table = pa.table({
        "usage_date": _days(batch.column(DATE), display),
        "service": batch.column(SERVICE).cast(pa.string()),
        "account_id": batch.column(ACCOUNT).cast(pa.string()),
        "region": _optional_text(batch, REGION),
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
    frame["currency"] = _labels(frame["currency"], DEFAULT_CURRENCY, "upper")
    frame["item_type"] = _labels(frame["item_type"], UNKNOWN)
    frame = frame.groupby(_GROUP_KEYS, as_index=False, sort=False)["cost"].sum()
    shown = {c: ", ".join(sorted(f)) for c, f in currency_files.items()}
    frame["file"] = frame["currency"].map(shown).fillna("")
    return frame


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

    @classmethod
    def from_options(cls, options: SourceOptions) -> CurSource:
        return cls(path=options.path, cost=options.cur_cost,
                   line_item_types=options.cur_line_item_types)

    def fetch(self, start: dt.date, end: dt.date) -> SourceResult:
        return read_cur(self.path, start, end, self.cost, self.line_item_types)

    def root_causes(self, alerts: pd.DataFrame) -> RootCauses:
        return RootCauses(cur_root_causes(self.path, alerts, self.cost, self.line_item_types))

    def check(self, today: dt.date) -> Check:
        return check_export(self.path, self.cost, self.line_item_types)
