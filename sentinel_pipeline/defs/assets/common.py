"""What every Sentinel asset does the same way: write days, report progress, describe output."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import dagster as dg
import pandas as pd

from sentinel_pipeline.errors import SentinelError
from sentinel_pipeline.schema import conform, empty_frame
from sentinel_pipeline.storage import TableStore

PROGRESS_EVERY_DAYS = 30


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn our readable errors into a Dagster failure that is not retried (retrying won't fix
    a missing column), keeping the message as the run's error."""
    try:
        yield
    except SentinelError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def write_days(
    context: dg.AssetExecutionContext,
    store: TableStore,
    table: str,
    frames: Mapping[date, pd.DataFrame],
    columns: list[str],
) -> list[str]:
    """Write one file per day, an empty one for a day with no rows, logging progress."""
    started = time.monotonic()
    paths = []
    days = sorted(frames)
    for i, day in enumerate(days, start=1):
        frame = frames[day]
        frame = conform(frame, columns) if len(frame) else empty_frame(columns)
        paths.append(store.write_partition(table, day, frame))
        if i % PROGRESS_EVERY_DAYS == 0 or i == len(days):
            context.log.info(
                f"{table}: wrote {i}/{len(days)} days ({time.monotonic() - started:.1f}s)"
            )
    return paths


def cents(value: float) -> dg.MetadataValue:
    """An amount for the UI: rounded to cents (a float, so the partition plots can draw it; the
    text formatter for people is formatting.money)."""
    return dg.MetadataValue.float(round(float(value), 2))


def impact_above_expected(rows: pd.DataFrame) -> dg.MetadataValue:
    """The $ the rows cost above expected (drops count 0), rounded to cents."""
    return cents(rows["impact"].clip(lower=0).sum() if len(rows) else 0)


def add_day_metadata(
    context: dg.AssetExecutionContext, day: date, metadata: Mapping[str, Any]
) -> None:
    """Metadata of one day's materialisation only. A single run over a range emits one
    materialisation event per day; what the asset returns in ``MaterializeResult`` is copied onto
    every one of them, what is added here lands on that day's event alone (no extra event)."""
    context.add_asset_metadata(dict(metadata), partition_key=day.isoformat())


def day_spans(days: Iterable[date]) -> str:
    """Days as consecutive spans: ``2025-03-01..2025-03-03, 2025-03-09``."""
    spans: list[list[date]] = []
    for day in sorted(days):
        if spans and day - spans[-1][1] == timedelta(days=1):
            spans[-1][1] = day
        else:
            spans.append([day, day])
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in spans)


def require_days(store: TableStore, table: str, days: Iterable[date], needed_by: str) -> None:
    """Fail, not retried, when ``table`` has no file for some of ``days``: a day that was never
    computed must not be read as an empty (quiet) day. The message names the days and the fix."""
    have = set(store.partitions(table))
    missing = sorted(d for d in days if d not in have)
    if missing:
        first, last = missing[0], missing[-1]
        raise dg.Failure(
            description=(
                f"{needed_by} needs {table} for {day_spans(missing)}, which was never "
                f"materialised: materialise {table} for those days first (in the UI select "
                f"{table} together with {needed_by} for the same days, or run "
                f"`sentinel backfill --start {first} --end {last}`), then rerun."
            ),
            allow_retries=False,
        )


def markdown_table(df: pd.DataFrame, columns: list[str], limit: int = 10) -> str:
    """A small Markdown preview for the Dagster UI (money and scores rounded for reading)."""
    if len(df) == 0:
        return "_no rows_"
    head = df[columns].head(limit)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in head.itertuples(index=False, name=None):  # one table per day: keep it cheap
        cells = []
        for value in row:
            if isinstance(value, float):
                cells.append("" if pd.isna(value) else f"{value:,.2f}")
            else:
                cells.append(str(value).replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    if len(df) > limit:
        lines.append(f"\n_{len(df) - limit} more rows_")
    return "\n".join(lines)


def range_label(days: list[date]) -> str:
    return days[0].isoformat() if len(days) == 1 else f"{days[0]}..{days[-1]}"
