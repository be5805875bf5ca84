"""The `focus` cost source: FOCUS 1.0 to 1.4 exports in a folder or S3 prefix, as daily series.

`read_cost_files` reads FOCUS exports (AWS Data Exports, Azure, GCP, OCI...) and Sentinel-style
records (`service, cost, region, timestamp, account`) stored as Parquet, CSV or gzip CSV
anywhere under the path, and returns one row per (usage_date, service, account_id, region) of
the raw_daily_costs contract.

Decisions, so that a run either returns trustworthy totals or stops with a fix:

* Repeated rows are SUMMED, never de-duplicated. A billing export legitimately holds several
  line items per series and hour (one per resource, SKU, usage type or pricing unit) that can be
  byte-identical once projected to the columns Sentinel reads, so dropping "duplicates" would
  under-count spend. Exporting the same billing period twice under the path double counts it:
  keep one export per billing period (data exports overwrite their period in place).
* Days are UTC days of ChargePeriodStart (`timestamp` for records); naive times mean UTC.
* Rows whose ChargeCategory (case-insensitive) is not in `charge_categories` are left out of
  the totals and reported per category in the `focus_excluded_cost` metadata; credits and
  refunds would otherwise hide or fake anomalies. Rows with no ChargeCategory (column absent
  or empty) are kept.
* Rows whose ChargeClass is "Correction" are left out too and reported as "correction". They
  correct a billing period that is already invoiced: they are delivered with a later billing
  period (its `billing_period=` folder) but dated when the cost was incurred (FOCUS 1.3
  Correction Handling), so counting them would make a day's total depend on which folders the
  requested range happens to open, and would move money onto days already alerted on.
* The text "NULL" means null. A null region becomes "global", a null service or account
  "unknown", a null currency "USD", a null cost 0.0. Text that is not a number is an error.
* Dates are checked on every row read (a row cannot be placed in the range without one); costs
  only on rows in [start, end], so an old bad row does not block every later day.
* Folders named `billing_period=YYYY-MM` (any case) that cannot overlap [start, end] are pruned
  from the listing and never opened. Files and folders starting with "." or "_" are skipped,
  as pyarrow datasets do (Spark `_temporary`, `.crc`, `_SUCCESS`).
* Only the needed columns are read (Parquet column projection, CSV `include_columns`), in
  batches, and each batch is aggregated at once, so memory follows the number of series-days,
  not of line items. CSV columns are read as text to keep account ids like 012345678901 intact.

FOCUS versions. Each file is read by its own header, so a folder may mix versions (an export
upgraded mid-year; one month exported in two versions side by side is counted twice, like any
export placed twice). The columns read kept their names and meaning from 1.0 to 1.4:
ChargePeriodStart, ServiceName, SubAccountId (conditional and nullable in every version: null
is "unknown"), RegionId (`Region` before 1.0; nullable), the cost metrics, BillingCurrency,
ChargeCategory (the same five values) and ChargeClass. Summing the cost column stays right:

* 1.1 and 1.2 add descriptive columns only (their PricingCurrency prices are never read).
* 1.3 deprecates ProviderName and PublisherName for ServiceProviderName and HostProviderName,
  and 1.4 removes them: nothing here reads either.
* 1.3 split cost allocation (AllocatedMethodId, AllocatedResourceId...) replaces a shared charge
  by allocated rows that add up to it and keep its dimensions, service, sub account and region
  included: the series total is the same, split or not.
* 1.3 ContractApplied (how much of a charge counted towards a contract commitment) and 1.4
  CommitmentProgramEligibilityDetails are JSON describing a charge, not further charges.

`focus_root_causes` drills into alerted series for their largest contributors: ChargeDescription
(SkuId when empty) as the usage type and ResourceId, ranked by root_causes.top_contributors.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sentinel_pipeline import schema, settings
from sentinel_pipeline.errors import ConfigError, SentinelError, SourceError
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
    check_one_currency,
    daily_rows,
    month_after,
    open_filesystem,
    os_errors,
    sum_groups,
)
from sentinel_pipeline.sources.owners import owner_values

SOURCE_NAME = "focus"
COST_COLUMNS: tuple[str, ...] = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
READ_SUFFIXES: tuple[str, ...] = (".parquet", ".csv", ".csv.gz", ".csv.gzip")

# Charge categories detection counts; credits, adjustments and the rest are reported apart.
COUNTED_CATEGORIES: tuple[str, ...] = ("usage", "purchase", "tax")
# How rows with ChargeClass "Correction" are reported (never counted, see above).
CORRECTION = "correction"

_BATCH_ROWS = 256 * 1024
_CSV_BLOCK_BYTES = 16 * 1024 * 1024  # larger CSV batches: per-batch overhead dominates at 1 MB
_PERIOD_RE = re.compile(r"^billing_period=(\d{4})-(\d{2})(?:-\d{2})?$", re.IGNORECASE)
_UTC_SUFFIX = r"\s*UTC$"  # BigQuery (GCP FOCUS) writes "2025-01-31 00:00:00 UTC"
_FIX_PATH = "set SENTINEL_SOURCE_PATH to the folder or s3:// prefix holding your FOCUS exports"
_FORMATS = (
    "Sentinel reads FOCUS 1.0 to 1.4 exports (ChargePeriodStart, ServiceName, SubAccountId, a "
    "cost column such as BilledCost; optional RegionId or Region, BillingCurrency, "
    "ChargeCategory, ChargeClass) or Sentinel records (timestamp, service, account, cost; "
    "optional region, currency)"
)
_GROUP_KEYS = ["usage_date", "service", "account_id", "region", "owner", "currency", "category"]


@dataclass(frozen=True)
class _Layout:
    """Which column of one file plays which role, so every format aggregates the same way."""

    kind: str
    date: str
    service: str
    account: str
    cost: str
    region: str | None
    currency: str | None
    category: str | None
    charge_class: str | None
    tags: str | None = None  # the Tags column, read only when an owner key is set
    owner: OwnerKey | None = None

    @property
    def columns(self) -> list[str]:
        """The projection: only these columns are read from the file."""
        roles = [
            self.date,
            self.service,
            self.account,
            self.cost,
            self.region,
            self.currency,
            self.category,
            self.charge_class,
            self.tags,
        ]
        return list(dict.fromkeys(c for c in roles if c is not None))


def read_cost_files(
    path: str,
    start: dt.date,
    end: dt.date,
    cost_column: str = settings.default("SENTINEL_FOCUS_COST"),
    charge_categories: tuple[str, ...] = COUNTED_CATEGORIES,
    owner: OwnerKey | None = None,
) -> SourceResult:
    """Daily cost per series for UTC days in [start, end], from the export files under `path`.

    With an owner key, each row's owner is that key's value in the ``Tags`` column (JSON text,
    a map or a struct; "" when the row has no such tag, or the file no Tags column).

    Returns `schema.RAW_COLUMNS` rows (source "focus", estimated False), sorted by usage_date
    and series, with metadata `focus_excluded_cost` ({category or "correction": total} of the
    rows left out) and `focus_files_read`. Raises SourceError, and returns nothing, on any bad
    file or value.
    """
    cost_column = _canonical_cost_column(cost_column)
    if start > end:
        raise SourceError(f"start {start} is after end {end}; ask for a range with start <= end")
    keep = {c.strip().lower() for c in charge_categories}
    fs, root, display_root = open_filesystem(path)
    files = _list_files(fs, root, display_root, path)
    files = [(f, d) for f, d in files if _period_overlaps(_relative(f, root), start, end)]
    day_start = np.datetime64(start, "D")
    day_end = np.datetime64(end, "D")
    parts: list[pa.Table] = []
    for file_path, display in files:
        part = _read_file(fs, file_path, display, cost_column, day_start, day_end, owner)
        if part is not None:
            parts.append(part.append_column("file", pa.repeat(pa.scalar(display), len(part))))
    if parts:
        rows = pa.concat_tables(parts).to_pandas()
    else:
        rows = pd.DataFrame({c: pd.Series(dtype="object") for c in [*_GROUP_KEYS, "file"]})
        rows["cost"] = pd.Series(dtype="float64")
    kept_mask = _counted(rows["category"], keep)
    excluded = rows[~kept_mask].groupby("category", sort=True)["cost"].sum()
    kept = rows[kept_mask]
    check_one_currency(kept, path, start, end)
    out = daily_rows(kept, SOURCE_NAME, None)
    metadata: dict[str, object] = {}
    if owner is not None:
        metadata = {"owner_key": str(owner),
                    "untagged_cost": float(out.loc[out["owner"] == "", "cost"].sum())}
    return SourceResult(out, {
        **metadata,
        "focus_files_read": len(files),
        "focus_cost_column": cost_column,
        "focus_excluded_cost": {str(k): float(v) for k, v in excluded.items()},
    })


def _canonical_cost_column(cost_column: str) -> str:
    """Accept the FOCUS cost metrics in any case; reject the rest before touching any file."""
    for name in COST_COLUMNS:
        if cost_column.strip().lower() == name.lower():
            return name
    raise SourceError(
        f"unknown cost column {cost_column!r}; choose one of the FOCUS cost columns "
        f"{', '.join(COST_COLUMNS)} (BilledCost is what the invoice shows)"
    )


def _list_files(fs: pafs.FileSystem, root: str, prefix: str, path: str) -> list[tuple[str, str]]:
    """Readable export files under root, sorted, as (filesystem path, path shown to users)."""
    with os_errors(path, reading=False):
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            raise SourceError(f"cost source path {path!r} does not exist; {_FIX_PATH}")
        if info.type == pafs.FileType.File:
            if not _is_export(info.path):
                raise SourceError(
                    f"cost source file {path!r} is not a {_suffix_list()} file; {_FIX_PATH}"
                )
            return [(info.path, prefix + info.path)]
        listing = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    found = [
        i.path
        for i in listing
        if i.type == pafs.FileType.File and not _hidden(_relative(i.path, root))
    ]
    files = sorted(p for p in found if _is_export(p))
    if not files:
        others = f" (found {len(found)} other file(s), e.g. {found[0]!r})" if found else ""
        raise SourceError(
            f"no billing files under {path!r}{others}; Sentinel reads {_suffix_list()} files "
            f"in the folder and its subfolders; {_FIX_PATH}"
        )
    return [(p, prefix + p) for p in files]


def _suffix_list() -> str:
    """The extensions read, for messages."""
    return ", ".join(f"*{s}" for s in READ_SUFFIXES)


def _is_export(file_path: str) -> bool:
    """True for the file types this source reads (manifests, checksums etc. are ignored)."""
    return file_path.lower().endswith(READ_SUFFIXES)


def _relative(file_path: str, root: str) -> str:
    """The part of a listed path below root, where partition folders are looked for."""
    return file_path[len(root) :].lstrip("/") if file_path.startswith(root) else file_path


def _hidden(relative: str) -> bool:
    """Skip "_"/"." files and folders as pyarrow datasets and Spark do."""
    return any(part.startswith(("_", ".")) for part in relative.split("/") if part)


def _period_overlaps(relative: str, start: dt.date, end: dt.date) -> bool:
    """False when a billing_period=YYYY-MM folder on the path lies wholly outside [start, end]."""
    for part in relative.split("/")[:-1]:
        match = _PERIOD_RE.match(part)
        if not match:
            continue
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            continue
        first = dt.date(year, month, 1)
        if month_after(first) <= start or first > end:
            return False
    return True


def _read_file(
    fs: pafs.FileSystem,
    file_path: str,
    display: str,
    cost_column: str,
    start: np.datetime64,
    end: np.datetime64,
    owner: OwnerKey | None = None,
) -> pa.Table | None:
    """One file's in-range rows, aggregated per series, day, currency and charge category."""
    with _file_batches(fs, file_path, display, cost_column, owner=owner) as (
            layout, _, batches, is_csv):
        return _aggregate(batches, layout, display, is_csv, start, end)


@contextmanager
def _file_batches(
    fs: pafs.FileSystem,
    file_path: str,
    display: str,
    cost_column: str,
    optional: tuple[str, ...] = (),
    owner: OwnerKey | None = None,
) -> Iterator[tuple[_Layout, list[str], Iterable[pa.RecordBatch], bool]]:
    """Open one file: its layout, the columns read (the layout's and whichever of `optional`
    it has), its batches, and whether it is CSV. Errors, also those raised while the batches
    are consumed, become SourceErrors naming the file."""
    with os_errors(display, reading=True):
        if file_path.lower().endswith(".parquet"):
            with fs.open_input_file(file_path) as handle:
                parquet = pq.ParquetFile(handle)
                names = parquet.schema_arrow.names
                layout = _resolve_layout(names, display, cost_column, owner)
                columns = _projection(layout, names, optional)
                yield layout, columns, parquet.iter_batches(batch_size=_BATCH_ROWS,
                                                            columns=columns), False
            return
        compression = None if file_path.lower().endswith(".csv") else "gzip"
        with fs.open_input_stream(file_path, compression=compression) as handle:
            names = pacsv.open_csv(handle).schema.names
        layout = _resolve_layout(names, display, cost_column, owner)
        columns = _projection(layout, names, optional)
        convert = pacsv.ConvertOptions(
            include_columns=columns,
            column_types={c: pa.string() for c in columns},
            null_values=["", "NULL"],
            strings_can_be_null=True,
        )
        with fs.open_input_stream(file_path, compression=compression) as handle:
            read = pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES)
            yield layout, columns, pacsv.open_csv(handle, read_options=read,
                                                  convert_options=convert), True


def _projection(layout: _Layout, names: list[str], optional: tuple[str, ...]) -> list[str]:
    """The layout's columns plus whichever optional columns the file has."""
    return list(dict.fromkeys([*layout.columns, *(c for c in optional if c in names)]))


def _resolve_layout(names: list[str], display: str, cost_column: str,
                    owner: OwnerKey | None = None) -> _Layout:
    """Recognise FOCUS or Sentinel records from the header; name what is missing otherwise."""
    lookup: dict[str, str] = {}
    for name in names:
        lookup.setdefault(name.lower(), name)

    def pick(*candidates: str) -> str | None:
        for cand in candidates:
            if cand in names:
                return cand
            if cand.lower() in lookup:
                return lookup[cand.lower()]
        return None

    focus_required = ["ChargePeriodStart", "ServiceName", "SubAccountId", cost_column]
    record_required = ["timestamp", "service", "account", "cost"]
    focus_hits = sum(pick(c) is not None for c in focus_required)
    record_hits = sum(pick(c) is not None for c in record_required)
    if pick("ChargePeriodStart") or (focus_hits >= record_hits and pick("timestamp") is None):
        kind, required = "FOCUS", focus_required
    else:
        kind, required = "Sentinel records", record_required
    missing = [c for c in required if pick(c) is None]
    if missing:
        shown = ", ".join(names[:25]) + (
            f", ... ({len(names) - 25} more)" if len(names) > 25 else ""
        )
        hint = ""
        if kind == "FOCUS" and cost_column in missing:
            present = [c for c in COST_COLUMNS if pick(c)]
            if present:
                hint = f" (cost columns present: {', '.join(present)}; select one as cost_column)"
        raise SourceError(
            f"{display}: missing required column(s) {', '.join(missing)} for a {kind} file"
            f"{hint}; columns found: {shown or '(none)'}. {_FORMATS}; re-export the file with "
            f"these columns or remove it from the folder"
        )
    if kind == "FOCUS":
        return _Layout(
            kind=kind,
            date=str(pick("ChargePeriodStart")),
            service=str(pick("ServiceName")),
            account=str(pick("SubAccountId")),
            cost=str(pick(cost_column)),
            region=pick("RegionId") or pick("Region"),
            currency=pick("BillingCurrency"),
            category=pick("ChargeCategory"),
            charge_class=pick("ChargeClass"),
            tags=pick("Tags") if owner is not None else None,
            owner=owner,
        )
    return _Layout(
        kind=kind,
        date=str(pick("timestamp")),
        service=str(pick("service")),
        account=str(pick("account")),
        cost=str(pick("cost")),
        region=pick("region"),
        currency=pick("currency"),
        category=None,
        charge_class=None,
        tags=pick("tags") if owner is not None else None,
        owner=owner,
    )


def _aggregate(
    batches: Iterable[pa.RecordBatch],
    layout: _Layout,
    display: str,
    is_csv: bool,
    start: np.datetime64,
    end: np.datetime64,
) -> pa.Table | None:
    """Aggregate a file batch by batch, keeping file row numbers for error messages."""
    offset = 0
    parts: list[pa.Table] = []
    for batch in batches:
        if batch.num_rows:
            part = _aggregate_batch(batch, layout, display, is_csv, offset, start, end)
            if part is not None:
                parts.append(part)
        offset += batch.num_rows
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else sum_groups(pa.concat_tables(parts), _GROUP_KEYS)


def _aggregate_batch(
    batch: pa.RecordBatch,
    layout: _Layout,
    display: str,
    is_csv: bool,
    offset: int,
    start: np.datetime64,
    end: np.datetime64,
) -> pa.Table | None:
    """Parse, validate, range-filter and sum one batch; None when no row is in range."""
    days = _utc_days(batch.column(layout.date), layout.date, display, is_csv, offset)
    in_range = np.flatnonzero((days >= start) & (days <= end))
    if in_range.size == 0:
        return None
    taken = batch.take(pa.array(in_range))
    table = pa.table(
        {
            "usage_date": pa.array(days[in_range]),
            "service": _labels(taken, layout.service, UNKNOWN),
            "account_id": _labels(taken, layout.account, UNKNOWN),
            "region": _labels(taken, layout.region, GLOBAL_REGION),
            "owner": _owners(taken, layout),
            "currency": _labels(taken, layout.currency, DEFAULT_CURRENCY, "upper"),
            "category": _category(taken, layout),
            "cost": _costs(taken.column(layout.cost), in_range, layout.cost, display, is_csv,
                           offset),
        }
    )
    return sum_groups(table, _GROUP_KEYS)


def _labels(
    batch: pa.RecordBatch, column: str | None, default: str, case: str | None = None
) -> pa.Array:
    """A label column of the batch as clean text; the default everywhere when absent."""
    if column is None:
        return pa.repeat(pa.scalar(default), batch.num_rows)
    return _text(batch.column(column), default, case)


def _owners(batch: pa.RecordBatch, layout: _Layout) -> pa.Array:
    """Each row's owner: the owner key's value in Tags, "" when untagged or no key is set."""
    if layout.owner is None or layout.tags is None:
        return pa.repeat(pa.scalar(""), batch.num_rows)
    values = owner_values(batch.column(layout.tags), layout.owner.tag_names)
    return values.fill_null("").cast(pa.string())


def _category(batch: pa.RecordBatch, layout: _Layout) -> pa.Array:
    """The lower-case charge category of each row ("" when unknown), or "correction" for a
    correction to an invoiced billing period, whatever its category."""
    category = _labels(batch, layout.category, "", "lower")
    charge_class = _labels(batch, layout.charge_class, "", "lower")
    return pc.if_else(pc.equal(charge_class, CORRECTION), pa.scalar(CORRECTION), category)


def _counted(category: pd.Series, keep: set[str]) -> pd.Series:
    """Rows detection counts: a kept charge category, or none at all."""
    return (category == "") | category.isin(keep)


def _row_ref(index: int, offset: int, is_csv: bool) -> str:
    """1-based data row of a file (and its line for CSV, the header being line 1)."""
    row = offset + index + 1
    return f"data row {row} (line {row + 1})" if is_csv else f"data row {row}"


def _clean_text(column: pa.Array) -> pa.Array:
    """Trimmed text where "", "NULL" and nulls are all null (exports write NULL as text)."""
    if isinstance(column.type, pa.DictionaryType):
        column = column.dictionary_decode()
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = column.cast(pa.string())
    column = pc.utf8_trim_whitespace(column)
    is_null = pc.is_in(column, value_set=pa.array(["", "NULL"], type=column.type))
    return pc.if_else(is_null, pa.scalar(None, type=column.type), column)


def _utc_days(column: pa.Array, name: str, display: str, is_csv: bool, offset: int) -> np.ndarray:
    """UTC calendar day of each timestamp; the first empty or unparsable value is an error."""
    if isinstance(column.type, pa.DictionaryType):
        column = column.dictionary_decode()
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        # Arrow stores zoned timestamps as UTC instants and numpy gets those; naive ones are UTC.
        days = column.to_numpy(zero_copy_only=False).astype("datetime64[D]")
    else:
        column = _clean_text(column)
        encoded = pc.dictionary_encode(column)  # parse each distinct text once (hourly exports)
        texts = pd.Series(encoded.dictionary.to_pylist(), dtype="object")
        texts = texts.str.replace(_UTC_SUFFIX, "Z", regex=True)
        stamps = pd.to_datetime(texts, utc=True, format="ISO8601", errors="coerce")
        unique_days = stamps.dt.tz_localize(None).to_numpy().astype("datetime64[D]")
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        days = np.append(unique_days, np.datetime64("NaT", "D"))[codes]  # null (-1) -> NaT
    bad = np.flatnonzero(np.isnat(days))
    if bad.size:
        index = int(bad[0])
        value = column[index].as_py() if not pa.types.is_temporal(column.type) else None
        shown = "an empty value" if value is None else f"the value {value!r}"
        raise SourceError(
            f"{display}: column {name} has {shown} at {_row_ref(index, offset, is_csv)} that "
            f"is not a date (first of {bad.size} here); {name} must be an ISO 8601 "
            f"timestamp such as 2025-01-31T00:00:00Z (times without an offset are read as "
            f"UTC); fix the file or re-export it"
        )
    return days


def _text(column: pa.Array, default: str, case: str | None = None) -> pa.Array:
    """Labels as text; "", "NULL" and nulls become the default (e.g. region -> "global")."""
    column = _clean_text(column)
    if case == "upper":
        column = pc.utf8_upper(column)
    elif case == "lower":
        column = pc.utf8_lower(column)
    return column.fill_null(default).cast(pa.string())


def _costs(
    column: pa.Array,
    positions: np.ndarray,
    name: str,
    display: str,
    is_csv: bool,
    offset: int,
) -> pa.Array:
    """Costs as float64; null is 0.0, anything else that is not a finite number is an error."""
    if isinstance(column.type, pa.DictionaryType):
        column = column.dictionary_decode()
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
        column = _clean_text(column)
    missing = column.is_null().to_numpy(zero_copy_only=False)
    try:
        numbers = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # some text is not a number
        texts = pd.Series(column.to_pylist(), dtype="object")
        numbers = pd.to_numeric(texts, errors="coerce").to_numpy(dtype="float64")
    bad = np.flatnonzero(~missing & ~np.isfinite(numbers))
    if bad.size:
        index = int(bad[0])
        raise SourceError(
            f"{display}: column {name} has the value {column[index].as_py()!r} at "
            f"{_row_ref(int(positions[index]), offset, is_csv)} that is not a number "
            f"(first of {bad.size} here); costs must be plain decimal numbers "
            f"such as 12.34 (no currency symbols or thousands separators); fix the file or "
            f"re-export it"
        )
    return pa.array(np.where(missing, 0.0, numbers), pa.float64())


# Drill-down for alerts: where in a FOCUS series the money went.
_DETAIL_SOURCES: dict[str, tuple[str, ...]] = {
    "usage_type": ("ChargeDescription", "SkuId"),  # readable first; SkuId when it is empty
    "resource_id": ("ResourceId",),
}


def focus_root_causes(
    path: str,
    anomalies: pd.DataFrame,
    cost_column: str = settings.default("SENTINEL_FOCUS_COST"),
    charge_categories: tuple[str, ...] = COUNTED_CATEGORIES,
    owner: OwnerKey | None = None,
) -> list[str]:
    """JSON top contributors (charge description or SKU, resource) of each anomaly row.

    One read of the files overlapping [min D - 14, max D], kept to the flagged series and the
    counted charge categories, then ranked per anomaly by root_causes.top_contributors (the
    region is already part of the series). Files without those columns give "" for their rows.
    """
    if len(anomalies) == 0:
        return []
    cost_column = _canonical_cost_column(cost_column)
    days, start, end = rc.window(anomalies)
    wanted = set(schema.with_owner(anomalies)[schema.SERIES_KEY].astype(str)
                 .itertuples(index=False, name=None))
    keep = {c.strip().lower() for c in charge_categories}
    fs, root, display_root = open_filesystem(path)
    files = [(f, d) for f, d in _list_files(fs, root, display_root, path)
             if _period_overlaps(_relative(f, root), start, end)]
    parts = [part for f, d in files
             if (part := _detail_file(fs, f, d, cost_column, start, end, wanted, owner))
             is not None]
    if not parts:
        return ["" for _ in range(len(anomalies))]
    detail = pd.concat(parts, ignore_index=True)
    detail = detail[_counted(detail["category"], keep)]
    by_series = dict(tuple(detail.groupby(schema.SERIES_KEY, sort=False)))
    return rc.rank_each(anomalies, days, by_series)


def _detail_file(
    fs: pafs.FileSystem, file_path: str, display: str, cost_column: str,
    start: dt.date, end: dt.date, wanted: set[tuple[str, ...]], owner: OwnerKey | None = None,
) -> pd.DataFrame | None:
    """One file's rows of the wanted series in [start, end], summed per day and detail, read
    in batches like the series themselves."""
    optional = tuple(c for cands in _DETAIL_SOURCES.values() for c in cands)
    with _file_batches(fs, file_path, display, cost_column, optional, owner) as (
            layout, columns, batches, is_csv):
        return _detail_batches(batches, layout, columns, display, is_csv, start, end, wanted)


def _detail_batches(
    batches: Iterable[pa.RecordBatch], layout: _Layout, columns: list[str], display: str,
    is_csv: bool, start: dt.date, end: dt.date, wanted: set[tuple[str, ...]],
) -> pd.DataFrame | None:
    """Keep the wanted series' rows of each batch; sum them per day, category and detail."""
    if layout.kind != "FOCUS":
        return None
    first, last = np.datetime64(start, "D"), np.datetime64(end, "D")
    offset = 0
    frames: list[pd.DataFrame] = []
    for batch in batches:
        day_values = _utc_days(batch.column(layout.date), layout.date, display, is_csv, offset)
        rows = np.flatnonzero((day_values >= first) & (day_values <= last))
        offset += batch.num_rows
        if rows.size == 0:
            continue
        taken = batch.take(pa.array(rows))
        frame = pd.DataFrame({
            "usage_date": day_values[rows],
            "service": _labels(taken, layout.service, UNKNOWN).to_pandas(),
            "account_id": _labels(taken, layout.account, UNKNOWN).to_pandas(),
            "region": _labels(taken, layout.region, GLOBAL_REGION).to_pandas(),
            "owner": _owners(taken, layout).to_pandas(),
        })
        series = pd.Series(list(zip(frame["service"], frame["account_id"], frame["region"],
                                    frame["owner"], strict=True)))
        match = series.isin(wanted).to_numpy()
        if not match.any():
            continue
        frame["category"] = _category(taken, layout).to_pandas()
        frame["cost"] = _costs(taken.column(layout.cost), rows, layout.cost, display, is_csv,
                               offset - batch.num_rows).to_numpy(zero_copy_only=False)
        for target, candidates in _DETAIL_SOURCES.items():
            value = pd.Series("", index=frame.index, dtype=object)
            for name in reversed([c for c in candidates if c in columns]):
                found = _labels(taken, name, "").to_pandas()
                value = value.where(found == "", found)
            frame[target] = value
        frames.append(frame[match])
    if not frames:
        return None
    keys = ["usage_date", *schema.SERIES_KEY, "category", *_DETAIL_SOURCES]
    return pd.concat(frames).groupby(keys, as_index=False, sort=False).agg(cost=("cost", "sum"))


@dataclass(frozen=True)
class FocusSource(CostSource):
    """FOCUS 1.x exports (Parquet or CSV, optionally gzip) in a folder or S3 prefix."""

    name: ClassVar[str] = SOURCE_NAME
    path: str
    cost_column: str
    owner: OwnerKey | None = None

    @classmethod
    def from_options(cls, options: SourceOptions) -> FocusSource:
        return cls(path=options.path, cost_column=options.focus_cost, owner=options.owner)

    def _require_path(self) -> None:
        if not self.path:
            raise ConfigError(
                "SENTINEL_SOURCE=focus needs SENTINEL_SOURCE_PATH: set it to the folder or "
                "s3:// prefix that holds your FOCUS exports."
            )

    def fetch(self, start: dt.date, end: dt.date) -> SourceResult:
        self._require_path()
        return read_cost_files(self.path, start, end, self.cost_column, owner=self.owner)

    def root_causes(self, alerts: pd.DataFrame) -> RootCauses:
        return RootCauses(focus_root_causes(self.path, alerts, self.cost_column,
                                            owner=self.owner))

    def check(self, today: dt.date) -> Check:
        """The settings, the listing, and a sample read: the first, middle and last file's
        header must have the needed columns and their first batch must parse (dates and
        costs on every row), so a folder of other CSVs fails here, naming the file."""
        try:
            self._require_path()
            cost_column = _canonical_cost_column(self.cost_column)
            fs, root, display_root = open_filesystem(self.path)
            files = _list_files(fs, root, display_root, self.path)
            sample = [files[i] for i in sorted({0, len(files) // 2, len(files) - 1})]
            rows = sum(_check_file(fs, f, d, cost_column) for f, d in sample)
        except SentinelError as exc:
            return False, str(exc)
        return True, (f"source: FOCUS exports under {self.path} ({len(files)} file(s), cost "
                      f"column {cost_column}; sampled {len(sample)}: columns and first "
                      f"{rows:,} row(s) parse)")


def _check_file(fs: pafs.FileSystem, file_path: str, display: str, cost_column: str) -> int:
    """For `sentinel doctor`: read the file's header and first batch as a run would, whatever
    their days; the rows read. Raises SourceError naming the file and the problem."""
    with _file_batches(fs, file_path, display, cost_column) as (layout, _, batches, is_csv):
        batch = next(iter(batches), None)
        if batch is None or batch.num_rows == 0:
            return 0
        every_day = np.datetime64("0001-01-01", "D"), np.datetime64("9999-12-31", "D")
        _aggregate_batch(batch, layout, display, is_csv, 0, *every_day)
        return int(batch.num_rows)
