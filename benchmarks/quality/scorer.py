"""Scores a detector's alerts against the generator's labeled events.

Why these numbers: people act on alerts (rows with ``alert == True``), so only those count.
Recall asks "was each event that deserves an alert alerted soon enough?" (within
``DETECT_WITHIN_DAYS`` of its start; a ramp or a small-bill overrun before it ends); precision
asks "was each alert about a real event?" (an alert on the event's series between its start and
``TRUE_AFTER_END_DAYS`` after its end counts as true, so the recovery from a drop or the tail of
an episode is not blamed); false alerts per 100 series-month is the noise a team lives with,
independent of how many events there were.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.quality.generator import NOT_ALERT_WORTHY, SERIES_KEY, WHOLE_EPISODE_KINDS

DETECT_WITHIN_DAYS = 3  # an event is detected by an alert on days [start, start + 3]
TRUE_AFTER_END_DAYS = 2  # an alert on days [start, end + 2] of an event is a true alert


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """Series key as plain strings so frames from any source join."""
    return frame.astype({k: str for k in SERIES_KEY})


def _days(column: pd.Series) -> np.ndarray:
    return pd.to_datetime(column).to_numpy().astype("datetime64[D]")


def _day_gap(later: pd.Series, earlier: pd.Series) -> np.ndarray:
    """Whole days between two date columns (pandas may store them in s or ns units)."""
    gap = pd.to_datetime(later).to_numpy() - pd.to_datetime(earlier).to_numpy()
    return (gap // np.timedelta64(1, "D")).astype(np.int64)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def score(anomalies: pd.DataFrame, events: pd.DataFrame, n_series: int, n_days: int,
          eval_start: date, series: pd.DataFrame | None = None) -> dict[str, Any]:
    """Recall, precision, F1, false alerts per 100 series-month, delay, and per pattern.

    ``anomalies``: all days' anomaly rows concatenated (only ``alert == True`` rows count);
    ``n_days``: days in the evaluation window, which is [eval_start, eval_start + n_days - 1];
    ``series``: optional key + ``traps`` table ("weekly+growth") to attribute false alerts to
    the traps of their series.
    """
    window_end = eval_start + timedelta(days=n_days - 1)
    lo, hi = np.datetime64(eval_start, "D"), np.datetime64(window_end, "D")
    if len(anomalies):
        rows = _keyed(anomalies[anomalies["alert"].astype(bool)])
        day = _days(rows["usage_date"]) if len(rows) else np.array([], dtype="datetime64[D]")
        rows = rows.assign(day=day)[(day >= lo) & (day <= hi)].reset_index(drop=True)
    else:
        rows = pd.DataFrame(columns=[*SERIES_KEY, "day", "kind"])
    rows["row_id"] = np.arange(len(rows))
    drop_days = _drop_rows(anomalies)

    ev = _keyed(events).reset_index(drop=True)
    ev["event_id"] = np.arange(len(ev))
    ev["start"] = _days(ev["start_date"]) if len(ev) else np.array([], dtype="datetime64[D]")
    ev["end"] = _days(ev["end_date"]) if len(ev) else np.array([], dtype="datetime64[D]")
    ev = ev[(ev["start"] >= lo) & (ev["start"] <= hi)].reset_index(drop=True)

    pairs = rows[[*SERIES_KEY, "row_id", "day"]].merge(
        ev[[*SERIES_KEY, "event_id", "start", "end", "kind"]], on=SERIES_KEY)
    offset = _day_gap(pairs["day"], pairs["start"])
    until_end = _day_gap(pairs["day"], pairs["end"])
    true_pairs = pairs[(offset >= 0) & (until_end <= TRUE_AFTER_END_DAYS)]
    # A ramp or a small-bill overrun is found when alerted before it ends (its first days are
    # small by design); any other event within DETECT_WITHIN_DAYS of its start.
    within = np.where(pairs["kind"].isin(WHOLE_EPISODE_KINDS),
                      np.maximum(_day_gap(pairs["end"], pairs["start"]), DETECT_WITHIN_DAYS),
                      DETECT_WITHIN_DAYS)
    detect_pairs = pairs.assign(delay=offset)[(offset >= 0) & (offset <= within)]

    true_rows = set(true_pairs["row_id"])
    n_flags = len(rows)
    n_true = len(true_rows)
    false_rows = rows[~rows["row_id"].isin(true_rows)]
    n_false = len(false_rows)

    first = detect_pairs.groupby("event_id")["delay"].min()
    ev["detected"] = ev["event_id"].map(first).notna()
    ev["delay"] = ev["event_id"].map(first)
    worthy = ev[~ev["kind"].isin(NOT_ALERT_WORTHY)]

    recall = _ratio(worthy["detected"].sum(), len(worthy))
    precision = _ratio(n_true, n_flags)
    f1 = (2 * precision * recall / (precision + recall)
          if precision + recall > 0 else float("nan"))
    series_months = n_series * n_days / 30
    delays = worthy.loc[worthy["detected"], "delay"]

    out: dict[str, Any] = {
        "events": len(worthy),
        "detected": int(worthy["detected"].sum()),
        "flags": n_flags,
        "true_flags": n_true,
        "false_flags": n_false,
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "false_per_100_series_month": _ratio(n_false * 100, series_months),
        "median_delay_days": float(delays.median()) if len(delays) else float("nan"),
        "mean_delay_days": float(delays.mean()) if len(delays) else float("nan"),
        # Alerts beyond the first per detected event: an episode should alert once.
        "repeat_flags_per_event": _ratio(
            len(true_pairs.drop_duplicates("row_id")) - true_pairs["event_id"].nunique(),
            true_pairs["event_id"].nunique()),
        "new_services_detected": _ratio(
            ev.loc[ev["kind"] == "new_spend", "detected"].sum(), (ev["kind"] == "new_spend").sum()),
    }
    drops = ev[ev["kind"] == "drop"]
    if len(drops):
        seen = drops[[*SERIES_KEY, "event_id", "start"]].merge(drop_days, on=SERIES_KEY)
        gap = _day_gap(seen["day"], seen["start"])
        hit = seen.loc[(gap >= 0) & (gap <= DETECT_WITHIN_DAYS), "event_id"].nunique()
        # Drops are not alerted by default, but they should still be recorded (kind=drop).
        out["drops_recorded"] = _ratio(hit, len(drops))
    out["recall_by_kind"] = {
        str(k): _ratio(g["detected"].sum(), len(g)) for k, g in ev.groupby("kind")}
    out["events_by_kind"] = {str(k): len(g) for k, g in ev.groupby("kind")}
    out["false_by_alert_kind"] = (
        {str(k): int(v) for k, v in false_rows["kind"].value_counts().items()}
        if "kind" in false_rows else {})
    if "traps" in ev:
        out["recall_by_kind_and_trap"] = _merge_counts(ev)
    if series is not None:
        out.update(_false_by_trap(false_rows, _keyed(series), n_days))
    # Row-level detail for diagnosis (not aggregated over seeds).
    out["_events"] = ev
    out["_false_rows"] = false_rows
    return out


def _drop_rows(anomalies: pd.DataFrame) -> pd.DataFrame:
    """Every recorded drop row, alerted or not: key and day."""
    if len(anomalies) == 0 or "kind" not in anomalies:
        return pd.DataFrame({**{k: pd.Series([], dtype=str) for k in SERIES_KEY},
                             "day": np.array([], dtype="datetime64[D]")})
    drops = _keyed(anomalies[anomalies["kind"] == "drop"])
    return drops[SERIES_KEY].assign(day=_days(drops["usage_date"]) if len(drops)
                                    else np.array([], dtype="datetime64[D]"))


def _merge_counts(ev: pd.DataFrame) -> dict[tuple[str, str], tuple[int, int]]:
    """(detected, events) per (event kind, trap): which shapes hide which events."""
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    for kind, traps, detected in zip(ev["kind"], ev["traps"], ev["detected"], strict=True):
        for trap in str(traps).split("+"):
            hit, total = counts.get((str(kind), trap), (0, 0))
            counts[(str(kind), trap)] = (hit + int(detected), total + 1)
    return counts


def _false_by_trap(false_rows: pd.DataFrame, series: pd.DataFrame,
                   n_days: int) -> dict[str, Any]:
    """False alerts charged to every trap of their series, raw and per 100 series-month."""
    traps_of = series.set_index(SERIES_KEY)["traps"]
    per_series_traps = series["traps"].str.split("+").explode()
    n_with = per_series_traps.value_counts()
    counts: dict[str, int] = {str(t): 0 for t in n_with.index}
    if len(false_rows):
        index = pd.MultiIndex.from_frame(false_rows[SERIES_KEY])
        found = traps_of.reindex(index).fillna("unknown").to_numpy()
        for traps in found:
            for trap in str(traps).split("+"):
                counts[trap] = counts.get(trap, 0) + 1
    rate = {t: _ratio(c * 100, n_with.get(t, 0) * n_days / 30) for t, c in counts.items()}
    return {"false_by_trap": counts, "false_by_trap_rate": rate,
            "series_by_trap": {str(k): int(v) for k, v in n_with.items()}}
