"""Data-quality rules behind the assets' checks: pure functions, so they are tested alone.

Each returns (passed, metadata); the assets turn them into Dagster asset check results, shown
next to the data in the UI. The anomalies check is blocking: bad rows must not reach Slack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sentinel_pipeline.schema import RAW_COLUMNS, SERIES_KEY, arrow_type

KINDS = {"spike", "sustained", "level_shift", "new_spend", "drop"}
# Columns a cost row cannot be used without: a missing one hides money or a series from Slack.
RAW_REQUIRED = ["usage_date", "service", "account_id", "region", "cost", "currency"]
SHRINK_RATIO = 0.5  # a day under half the day before usually means missing accounts or services
MIN_COVERAGE = 0.5


def _parquet_types(column: str) -> tuple[pa.DataType, ...]:
    """The Arrow types a written contract column may have (text may come as large_string)."""
    wanted = arrow_type(column)
    assert wanted is not None, f"{column} has no type in schema.py"
    return (wanted, pa.large_string()) if wanted == pa.string() else (wanted,)


# The raw_daily_costs file schema of DESIGN.md, as Parquet (Arrow) types: what DuckDB, Athena
# and pyarrow see when they read the table as one dataset.
RAW_ARROW_TYPES: dict[str, tuple[pa.DataType, ...]] = {col: _parquet_types(col)
                                                       for col in RAW_COLUMNS}


def raw_days_complete(frames: Mapping[date, pd.DataFrame],
                      day_before_total: float | None) -> tuple[bool, dict[str, Any]]:
    """Every day has costs, and no day's total is under half the previous day's."""
    empty, shrunk = [], []
    previous = day_before_total
    for day in sorted(frames):
        rows = frames[day]
        total = float(rows["cost"].sum()) if len(rows) else 0.0
        if len(rows) == 0:
            empty.append(str(day))
        elif previous and previous > 0 and total < SHRINK_RATIO * previous:
            shrunk.append(f"{day} ({total:,.2f} vs {previous:,.2f})")
        previous = total
    return not empty and not shrunk, {
        "days_without_costs": ", ".join(empty) or "none",
        "days_under_half_the_day_before": ", ".join(shrunk) or "none",
    }


def raw_no_missing_values(frames: Mapping[date, pd.DataFrame]) -> tuple[bool, dict[str, Any]]:
    """No NaN or empty value in the columns every cost row needs (a NaN cost sums to nothing)."""
    counts = dict.fromkeys(RAW_REQUIRED, 0)
    for rows in frames.values():
        for col in RAW_REQUIRED:
            if col not in rows:
                counts[col] += len(rows)
                continue
            missing = rows[col].isna()
            if col not in ("usage_date", "cost"):  # text: blank is missing too
                missing |= rows[col].astype("string").str.strip().fillna("") == ""
            counts[col] += int(missing.sum())
    bad = {col: n for col, n in counts.items() if n}
    return not bad, {"missing_values": ", ".join(f"{c}: {n}" for c, n in bad.items()) or "none",
                     "rows_checked": int(sum(len(f) for f in frames.values()))}


def raw_one_currency_per_series(
    frames: Mapping[date, pd.DataFrame],
) -> tuple[bool, dict[str, Any]]:
    """Each series is billed in one currency across the run (sums of mixed currencies lie)."""
    found = [f[SERIES_KEY + ["currency"]] for f in frames.values() if len(f)]
    if not found:
        return True, {"series_with_several_currencies": 0, "currencies": "none"}
    rows = pd.concat(found, ignore_index=True)
    per_series = rows.groupby(SERIES_KEY, dropna=False)["currency"].nunique()
    mixed = per_series[per_series > 1]
    examples = [" / ".join(map(str, key)) for key in mixed.index[:5]]
    return len(mixed) == 0, {
        "series_with_several_currencies": len(mixed),
        "examples": "; ".join(examples) or "none",
        "currencies": ", ".join(sorted(rows["currency"].dropna().astype(str).unique())) or "none",
    }


def parquet_schema_matches(
    schema: pa.Schema, expected: Mapping[str, tuple[pa.DataType, ...]]
) -> tuple[bool, dict[str, Any]]:
    """A written file has the contract's columns, in order, with their Parquet types; a drift
    (say, cost as text) breaks everyone reading the table as one dataset. Zero-row files are
    typed too (storage writes the contract's types where pandas cannot tell)."""
    problems = []
    names = list(schema.names)
    if names[: len(expected)] != list(expected):
        problems.append(f"columns start {names[: len(expected)]}, expected {list(expected)}")
    for col, allowed in expected.items():
        found = schema.field(col).type if col in names else None
        if found is not None and found not in allowed:
            problems.append(f"{col} is {found}, expected {allowed[0]}")
    return not problems, {
        "problems": "; ".join(problems) or "none",
        "schema": ", ".join(f"{f.name}: {f.type}" for f in schema),
    }


def baseline_coverage(frames: Mapping[date, pd.DataFrame]) -> tuple[bool, dict[str, Any]]:
    """Share of series with a week of history on the last day: low means baselines are guesses."""
    last = frames[max(frames)]
    share = float((last["history_days"] >= 7).mean()) if len(last) else 0.0
    return share >= MIN_COVERAGE, {"share_with_7_days_history": round(share, 4),
                                   "series": len(last)}


def anomalies_consistent(frames: Mapping[date, pd.DataFrame]) -> tuple[bool, dict[str, Any]]:
    """Rows agree with themselves: impact = actual - expected, known kinds, finite scores,
    episodes that start on or before their day."""
    problems: list[str] = []
    for day, rows in sorted(frames.items()):
        if len(rows) == 0:
            continue
        impact = rows["actual_cost"] - rows["expected_cost"]
        if not np.allclose(rows["impact"], impact, rtol=1e-9, atol=1e-6):
            problems.append(f"{day}: impact != actual - expected")
        if not set(rows["kind"]) <= KINDS:
            problems.append(f"{day}: unknown kind {sorted(set(rows['kind']) - KINDS)}")
        if not np.isfinite(rows["score"].to_numpy(dtype=float)).all():
            problems.append(f"{day}: score is not finite")
        starts = pd.to_datetime(rows["anomaly_start"]).dt.date
        if (starts > pd.to_datetime(rows["usage_date"]).dt.date).any():
            problems.append(f"{day}: anomaly_start after usage_date")
    return not problems, {"problems": "; ".join(problems[:10]) or "none"}


def alerts_explained(
    frames: Mapping[date, pd.DataFrame], actions: Sequence[str]
) -> tuple[bool, dict[str, Any]]:
    """Every alert says what happened and what to do: a non-empty explanation and one of the
    known actions (an empty or unknown one would post a useless Slack message)."""
    unexplained, bad_action, total = 0, 0, 0
    for rows in frames.values():
        if len(rows) == 0:
            continue
        total += len(rows)
        unexplained += int((rows["explanation"].fillna("").astype(str).str.strip() == "").sum())
        bad_action += int((~rows["action"].fillna("").astype(str).isin(actions)).sum())
    return unexplained == 0 and bad_action == 0, {
        "alerts": total,
        "without_explanation": unexplained,
        "with_unknown_action": bad_action,
        "allowed_actions": ", ".join(actions),
    }
