"""What the file sources share: opening an export folder, naming a broken file, summing rows.

The `focus` and `cur` readers differ in columns and layout but end the same way: a local or
S3 path is opened, filesystem errors become messages naming the file and the fix, line items
are summed per group in Arrow, a series may not mix currencies, and the kept rows become
raw_daily_costs. Each caller passes its own group keys, source name and estimated-days rule:
nothing here knows which reader called it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs

from sentinel_pipeline import schema
from sentinel_pipeline.errors import SourceError

# Labels for values an export leaves empty.
DEFAULT_CURRENCY = "USD"
GLOBAL_REGION = "global"
UNKNOWN = "unknown"

_DENIED_MARKERS = ("ACCESS_DENIED", "AccessDenied", "HTTP status 403")
_FIX_PATH = "set SENTINEL_SOURCE_PATH to a folder or s3:// prefix holding FOCUS or CUR exports"


def open_filesystem(path: str) -> tuple[pafs.FileSystem, str, str]:
    """Filesystem, path inside it, and the prefix that turns such a path back into a user URL.

    S3 gets the endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL explicitly: recent
    pyarrow reads them itself, older versions do not, and passing it also skips the
    bucket-region lookup that a local S3 (MinIO, moto) cannot answer.
    """
    if "://" not in path:
        local = os.path.abspath(os.path.expanduser(path))
        return pafs.LocalFileSystem(), local, ""
    scheme = path.split("://", 1)[0].lower()
    try:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if scheme in ("s3", "s3a") and endpoint:
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            options: dict[str, str] = {"endpoint_override": endpoint}
            if region:
                options["region"] = region
            fs: pafs.FileSystem = pafs.S3FileSystem(**options)
            root = path.split("://", 1)[1].strip("/")
        else:
            fs, root = pafs.FileSystem.from_uri(path)
            root = root.rstrip("/")
    except (OSError, ValueError, pa.ArrowException) as err:
        raise SourceError(f"cannot open cost source path {path!r}: {err}; {_FIX_PATH}") from err
    prefix = "" if scheme == "file" else f"{scheme}://"
    return fs, root, prefix


@contextmanager
def os_errors(display: str, *, reading: bool) -> Iterator[None]:
    """Turn filesystem and parser errors into SourceErrors that name the file and the fix
    (``reading`` a file, or else listing a folder)."""
    try:
        yield
    except SourceError:
        raise
    except PermissionError as err:
        raise _permission_error(display, err) from err
    except pa.ArrowInvalid as err:
        raise SourceError(
            f"{display} cannot be read as {_format_name(display)}: {err}; re-export the file "
            f"or remove it from the folder"
        ) from err
    except OSError as err:
        text = str(err)
        if any(marker in text for marker in _DENIED_MARKERS):
            raise _permission_error(display, err) from err
        action = "reading" if reading else "listing"
        raise SourceError(
            f"error {action} {display}: {text}; check that the path exists and is reachable"
        ) from err


def _permission_error(display: str, err: Exception) -> SourceError:
    """The one message for unreadable files, local or S3."""
    return SourceError(
        f"permission denied reading {display} ({err}); fix permissions so the user running "
        f"Sentinel can read it (local: chmod/chown; S3: allow s3:ListBucket and s3:GetObject "
        f"on the prefix)"
    )


def _format_name(display: str) -> str:
    """Parquet or CSV, from the file name."""
    return "Parquet" if display.lower().endswith(".parquet") else "CSV"


def month_after(day: dt.date) -> dt.date:
    """The first day of the month after ``day``'s (billing periods are calendar months)."""
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def billing_periods(start: dt.date, end: dt.date) -> list[str]:
    """YYYY-MM of every billing period (calendar month) touching [start, end]."""
    out, month = [], start.replace(day=1)
    while month <= end:
        out.append(f"{month:%Y-%m}")
        month = month_after(month)
    return out


def sum_groups(table: pa.Table, keys: list[str]) -> pa.Table:
    """Sum ``cost`` per group of ``keys`` in Arrow, single-threaded so reruns give
    bit-identical sums."""
    summed = table.group_by(keys, use_threads=False).aggregate([("cost", "sum")])
    return pa.table({**{k: summed[k] for k in keys}, "cost": summed["cost_sum"]})


def check_one_currency(rows: pd.DataFrame, path: str, start: dt.date, end: dt.date) -> None:
    """A series summed across currencies would be meaningless: stop and name it, with the
    files (``rows["file"]``) holding each currency."""
    if rows.empty:
        return
    per_series = rows.groupby(schema.SERIES_KEY, sort=True)["currency"].nunique()
    mixed = per_series[per_series > 1]
    if mixed.empty:
        return
    first = pd.Series(dict(zip(schema.SERIES_KEY, mixed.index[0], strict=True)))
    service, account, region, owner = (first[k] for k in schema.SERIES_KEY)
    series = rows[schema.same_series(rows, first)]
    details = []
    for currency, group in series.groupby("currency", sort=True):
        files = sorted(set(group["file"]))
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        details.append(f"{currency} (in {shown})")
    more = f"; {len(mixed) - 1} other series are mixed too" if len(mixed) > 1 else ""
    owned = f" owner={owner!r}" if owner else ""
    raise SourceError(
        f"series service={service!r} account_id={account!r} region={region!r}{owned} has costs in "
        f"more than one currency between {start} and {end} under {path!r}: "
        f"{'; '.join(details)}{more}; export one billing currency per account, or filter the "
        f"files to one BillingCurrency"
    )


def _check_finite(daily: pd.DataFrame, rows: pd.DataFrame) -> None:
    """A day's sum that overflows (two line items of 1e308) or a cost that is inf cannot be
    stored or scored: stop, naming the series, the day and the files (``rows["file"]``)."""
    bad = ~np.isfinite(daily["cost"].to_numpy(dtype=float))
    if not bad.any():
        return
    first = daily[bad].iloc[0]
    series = rows[(rows["usage_date"] == first["usage_date"]) & schema.same_series(rows, first)]
    files = sorted(set(series["file"])) if "file" in series else []
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    more = f"; {int(bad.sum()) - 1} other series-days too" if bad.sum() > 1 else ""
    raise SourceError(
        f"series service={first['service']!r} account_id={first['account_id']!r} "
        f"region={first['region']!r} sums to {first['cost']} on "
        f"{pd.Timestamp(first['usage_date']).date()} (in {shown or 'the export'}){more}: a cost "
        "too large to store; fix or remove those line items and rerun the day. Nothing was "
        "written."
    )


def daily_rows(
    rows: pd.DataFrame,
    source: str,
    estimated: Callable[[list[dt.date]], Sequence[bool] | np.ndarray] | None,
) -> pd.DataFrame:
    """Sum the kept rows per series and day and type them as raw_daily_costs of ``source``;
    ``estimated`` says which days the source may still rewrite (None: no day)."""
    if rows.empty:
        return schema.empty_frame(schema.RAW_COLUMNS)
    keys = ["usage_date", *schema.SERIES_KEY, "currency"]
    daily = rows.groupby(keys, as_index=False, sort=False).agg(cost=("cost", "sum"))
    _check_finite(daily, rows)
    daily["usage_date"] = pd.to_datetime(daily["usage_date"]).dt.date
    daily["estimated"] = (estimated(daily["usage_date"].tolist()) if estimated is not None
                          else False)
    daily["source"] = source
    daily = daily.sort_values(by=["usage_date", *schema.SERIES_KEY], kind="stable")
    return schema.conform(daily, schema.RAW_COLUMNS)
