"""Where an anomaly's money went: the detail rows (region, usage type, resource) that grew most.

Sources that can see below the series (Cost Explorer by REGION and USAGE_TYPE, CUR line items)
return a detail frame per flagged series; the ranking is the same for all of them, so it lives
here as a pure function. The result is stored with the anomaly as JSON (column ``root_causes``).

How the lines are told to people also lives here, so Slack and the fallback explanation say the
same thing (``describe``, ``where_the_money_went``):

- Each line's growth is against *its own* average of the 14 days before, while the alert's
  impact is actual minus the detector's expected cost. The two bases differ (the expected cost
  may follow weekdays and trends and leave past spikes out), so a line can grow more than the impact
  (other lines fell, or the expected cost was below the 14-day average) or less. The text names
  the basis ("growth over each line's 14-day average") instead of forcing the numbers to add up
  to the impact: the amounts stay the ones a reader finds again in Cost Explorer.
- Only material lines are named (``material``): at least MATERIAL_SHARE of the growth of all the
  lines that grew, and at least MATERIAL_SHARE of the alert's impact. The first keeps the minor
  lines of a broad growth out ("+$1.86 (0 %)"); the second drops lines whose growth, however
  large among the lines, explains almost none of the money the alert is about (the 14-day
  comparison then does not explain the impact at all, and naming the line would mislead).
  One twentieth is a judgment call: a line below it changes no decision a FinOps reader makes
  (at most three lines are shown, and those above it carry the bulk), and it never prints as a
  "0 %" or "2 %" that reads as noise. The stored JSON keeps the top TOP_CONTRIBUTORS lines
  whatever their size; only the text leaves the small ones out.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from datetime import date, timedelta

import pandas as pd

from sentinel_pipeline.formatting import money
from sentinel_pipeline.schema import SERIES_KEY, with_owner

DETAIL_DIMENSIONS: tuple[str, ...] = ("region", "usage_type", "resource_id")
BASELINE_DAYS = 14
TOP_CONTRIBUTORS = 5
MATERIAL_SHARE = 0.05  # of the growth and of the impact; smaller lines are not named
HEADING = "Where the money went"
BASIS = f"growth over each line's {BASELINE_DAYS}-day average"


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
    (keyed by the SERIES_KEY values as text; '' for a series without detail). Alerts made
    before series had an owner are unowned."""
    keys = with_owner(anomalies)[SERIES_KEY].astype(str).itertuples(index=False, name=None)
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


def _number(value: object) -> float | None:
    """A finite float of a number (numpy's too), None for anything else."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def material(causes: Sequence[dict[str, object]],
             impact: object = None) -> list[dict[str, object]]:
    """The lines worth naming: at least MATERIAL_SHARE of the growth and of ``impact``.

    A missing number cannot rule a line out (it is kept); a known impact of zero or less (a
    drop) leaves nothing to attribute, so no line is named then.
    """
    bound = _number(impact)
    if bound is not None and bound <= 0:
        return []
    kept = []
    for cause in causes:
        share, increase = _number(cause.get("share")), _number(cause.get("increase"))
        if share is not None and share < MATERIAL_SHARE:
            continue
        if bound is not None and increase is not None and increase < MATERIAL_SHARE * bound:
            continue
        kept.append(dict(cause))
    return kept


def describe(causes: Sequence[dict[str, object]], impact: object = None, limit: int = 3,
             currency: object = "USD") -> str:
    """The material lines for people, largest first: 'us-east-1 BoxUsage:m5.large +$812.40
    (74 % of the growth); ...' (the growth is over each line's 14-day average, see BASIS)."""
    parts = []
    for cause in material(causes, impact)[:limit]:
        where = " ".join(str(cause[d]) for d in DETAIL_DIMENSIONS if cause.get(d))
        share, increase = _number(cause.get("share")), _number(cause.get("increase"))
        baseline = _number(cause.get("baseline"))
        notes = ["new"] if baseline == 0 else []
        if share is not None:
            notes.append(f"{share * 100:.0f} % of the growth")
        money_text = f" +{money(increase, currency)}" if increase is not None else ""
        note_text = f" ({'; '.join(notes)})" if notes else ""
        parts.append(f"{where or 'unlabelled usage'}{money_text}{note_text}")
    return "; ".join(parts)


def where_the_money_went(causes: Sequence[dict[str, object]], impact: object = None,
                         currency: object = "USD") -> str:
    """The sentence the fallback explanation ends its facts with, '' when no line is material.

    The Slack message shows the same lines on a line of their own and removes this sentence from
    a stored explanation, so it must stay the one way to write it.
    """
    text = describe(causes, impact, currency=currency)
    return f"{HEADING} ({BASIS}): {text}." if text else ""
