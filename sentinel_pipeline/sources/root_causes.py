"""Where an anomaly's money went: the detail rows (region, usage type, resource) that grew most.

Sources that can see below the series (Cost Explorer by REGION and USAGE_TYPE, CUR line items)
return a detail frame per flagged series; the ranking is the same for all of them, so it lives
here as a pure function. The result is stored with the anomaly as JSON (column ``root_causes``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, timedelta

import pandas as pd

from sentinel_pipeline.schema import SERIES_KEY

DETAIL_DIMENSIONS: tuple[str, ...] = ("region", "usage_type", "resource_id")
BASELINE_DAYS = 14
TOP_CONTRIBUTORS = 5


def top_contributors(
    detail: pd.DataFrame,
    day: date,
    baseline_days: int = BASELINE_DAYS,
    top: int = TOP_CONTRIBUTORS,
) -> list[dict[str, object]]:
    """The detail rows of one series that added most to ``day`` against the days before it.

    ``detail`` has ``usage_date``, ``cost`` and any of DETAIL_DIMENSIONS. The baseline of a row
    is its mean daily cost over the ``baseline_days`` before ``day`` (a day with no row counts
    as zero, so a usage type that is new on ``day`` has baseline 0). ``share`` is the row's part
    of all the growth (the sum of the rows that grew), so it stays within 0..1 even when other
    rows of the series shrank.
    """
    dims = [d for d in DETAIL_DIMENSIONS if d in detail.columns]
    if len(detail) == 0 or not dims:
        return []
    frame = detail.copy()
    frame["usage_date"] = pd.to_datetime(frame["usage_date"]).dt.date
    for dim in dims:
        frame[dim] = frame[dim].fillna("").astype(str)
    first = day - timedelta(days=baseline_days)
    on_day = frame[frame["usage_date"] == day].groupby(dims)["cost"].sum()
    before = frame[(frame["usage_date"] >= first) & (frame["usage_date"] < day)]
    baseline = before.groupby(dims)["cost"].sum() / baseline_days
    table = pd.concat({"actual": on_day, "baseline": baseline}, axis=1).fillna(0.0)
    table["increase"] = table["actual"] - table["baseline"]
    total_increase = float(table["increase"].clip(lower=0).sum())
    grew = table[table["increase"] > 0].sort_values("increase", ascending=False).head(top)
    out: list[dict[str, object]] = []
    for key, row in grew.iterrows():
        values = key if isinstance(key, tuple) else (key,)
        item: dict[str, object] = {d: v for d, v in zip(dims, values, strict=True) if v != ""}
        item["actual"] = round(float(row["actual"]), 2)
        item["baseline"] = round(float(row["baseline"]), 2)
        item["increase"] = round(float(row["increase"]), 2)
        item["share"] = (round(float(row["increase"]) / total_increase, 3)
                         if total_increase > 0 else None)
        out.append(item)
    return out


def window(anomalies: pd.DataFrame) -> tuple[list[date], date, date]:
    """Each anomaly row's day, and the days [first D - BASELINE_DAYS, last D] a drill-down
    reads to rank all of them."""
    days = list(pd.to_datetime(anomalies["usage_date"]).dt.date)
    return days, min(days) - timedelta(days=BASELINE_DAYS), max(days)


def rank_each(
    anomalies: pd.DataFrame, days: Sequence[date], by_series: Mapping[tuple, pd.DataFrame]
) -> list[str]:
    """The JSON top contributors of each anomaly row, in order, from its series' detail frame
    (keyed by the SERIES_KEY values as text; '' for a series without detail)."""
    keys = anomalies[SERIES_KEY].astype(str).itertuples(index=False, name=None)
    return ["" if (detail := by_series.get(key)) is None
            else to_json(top_contributors(detail, day))
            for key, day in zip(keys, days, strict=True)]


def to_json(causes: Sequence[dict[str, object]]) -> str:
    return json.dumps(list(causes), sort_keys=True) if causes else ""


def from_json(text: object) -> list[dict[str, object]]:
    """The stored column back as a list ('' or missing: no drill-down was possible)."""
    if not isinstance(text, str) or not text.strip():
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def describe(causes: Sequence[dict[str, object]], limit: int = 3) -> str:
    """One line for people: 'us-east-1 BoxUsage:m5.large +$812.40 (74%); ...'."""
    parts = []
    for cause in list(causes)[:limit]:
        where = " ".join(str(cause[d]) for d in DETAIL_DIMENSIONS if cause.get(d))
        share, increase = cause.get("share"), cause.get("increase")
        pct = f" ({float(share):.0%})" if isinstance(share, int | float) else ""
        money = f" +${float(increase):,.2f}" if isinstance(increase, int | float) else ""
        parts.append(f"{where or 'unlabelled usage'}{money}{pct}")
    return "; ".join(parts)
