"""Column contracts of the Sentinel tables (DESIGN.md), shared by sources, detection and storage."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pyarrow as pa

# owner: the value of the tag or cost category named by SENTINEL_OWNER_KEY (e.g. team), "" when
# none is configured or the spend is untagged; it splits a service's spend between its owners.
SERIES_KEY: list[str] = ["service", "account_id", "region", "owner"]

RAW_COLUMNS: list[str] = [
    "usage_date",
    *SERIES_KEY,
    "cost",
    "currency",
    "estimated",
    "source",
]

BASELINE_COLUMNS: list[str] = [
    "usage_date",
    *SERIES_KEY,
    "expected_cost",
    "lower",
    "upper",
    "scale",
    "history_days",
    "elevated_days",  # days in a row before D that were above normal (the open episode)
    "log_scale",
    "noise_df",  # degrees of freedom of log_scale (how sure the noise estimate is)
    "prior_actual",  # $ actual and expected over those days: the episode's money so far
    "prior_expected",
    "cusum",  # drift statistics at D-1 (robust.py): the evidence of a slow rise (K = 0.5)
    "cusum_large",  # and of a larger one (K = 1.5)
    "autocorr",  # lag-1 autocorrelation of the noise: a run of z adds up in a wider unit
    # lookback days of an earlier episode the baseline replaced by its model (robust.py)
    "episode_days_left_out",
    # $ of expected_cost a monthly charge or cycle adds to the day's normal cost (robust.py)
    "monthly_cost",
    # $ of a monthly charge due tomorrow (as it was the last two months) that may come a day
    # early: scoring takes it as expected where today's excess is that charge (robust.py)
    "early_cost",
    "method",
]

ANOMALY_COLUMNS: list[str] = [
    "usage_date",
    *SERIES_KEY,
    "actual_cost",
    "expected_cost",
    "lower",
    "upper",
    "impact",
    "pct_change",
    "score",
    "kind",
    "method",
    "currency",
    "anomaly_start",
    "alert",
    # JSON list of the detail rows that grew most (sources/root_causes.py); "" when the
    # source cannot drill below the series or the row is not an alert.
    "root_causes",
]

# cost_scores: every series on every day, scored, so users can rank, plot and threshold it
# (cost_anomalies keeps only the unusual rows). score is in standard deviations of a one-sided
# normal tail: a threshold of s means about P(Z > s) false alarms per series-day; kind is ""
# on a normal day.
SCORE_COLUMNS: list[str] = [
    "usage_date",
    *SERIES_KEY,
    "actual_cost",
    "expected_cost",
    "impact",
    "pct_change",
    "score",
    "kind",
    "method",
    "currency",
    # what cost_anomalies takes of the unusual rows (it is the filter of this table)
    "lower",
    "upper",
    "anomaly_start",
    "alert",
    # the robust method's drift statistics after the day (NaN for seed): the next day's start
    "cusum",
    "cusum_large",
    # the days of the last 63 that stood out without opening an episode, as bits (bit k: k days
    # before usage_date; robust.py): the next day carries on from it, and the baselines leave
    # those days out of the history (0 for seed)
    "unusual_days",
    # the open episode's largest day's $ impact so far after the day (0 when none is open; NaN
    # for seed): the next day alerts again only when its impact doubles it (robust.py)
    "episode_peak",
]

# The one list of anomaly kinds (cost_anomalies.kind): a cost that went up opens or continues
# an episode as one of the first four; a drop is reported, and posted only with alert_on_drops.
UP_KINDS: tuple[str, ...] = ("spike", "sustained", "level_shift", "new_spend")
ANOMALY_KINDS: tuple[str, ...] = (*UP_KINDS, "drop")

# The life of an anomaly (issue 16). An *episode* is one series' run of elevated days that
# alerted; it is named by its first day and series (episode_key). anomaly_episodes[D] holds every
# episode open on D plus those that ended on D, with its status on D:
#   open      alerted on D (its first day in the table)
#   ongoing   still above expected on D
#   resolved  back to expected on D (its last row; resolved_on = D)
#   accepted  a user said expected / planned (feedback): it stops alerting, the level is adopted
EPISODE_STATUSES: tuple[str, ...] = ("open", "ongoing", "resolved", "accepted")
EPISODE_COLUMNS: list[str] = [
    "usage_date",  # the partition day D
    "episode_id",  # episode_key: anomaly_start|service|account_id|region[|owner]
    *SERIES_KEY,
    "kind",  # the kind it alerted as
    "anomaly_start",
    "alert_day",  # the day it alerted (the Slack message to follow up on)
    "alert_key",  # delivery.ledger.alert_key of that day's row
    "status",
    "days",  # days from anomaly_start to D (or to its last elevated day once resolved)
    "actual_cost",  # on D
    "expected_cost",  # on D
    "impact_to_date",  # $ above expected from anomaly_start to D
    "resolved_on",  # D when status is resolved, else null
    "verdict",  # the latest feedback (VERDICTS) or ""
    "verdict_by",  # Slack user id of that feedback or ""
    "currency",
]

# Feedback from Slack on an alert (issue 16): one row per (alert_key, user), the latest verdict
# of that user. Table alert_feedback (not partitioned: {data}/alert_feedback/data.parquet).
#   expected     the rise is real and fine: accept the new level (the episode stops alerting)
#   planned      a planned change: same as expected
#   not_anomaly  a false alarm: raise this series' bar for this kind of change (reversible:
#                removing the reaction removes the row and the bar goes back)
VERDICTS: tuple[str, ...] = ("expected", "planned", "not_anomaly")
FEEDBACK_TABLE = "alert_feedback"
FEEDBACK_COLUMNS: list[str] = [
    "alert_key",
    "episode_id",
    *SERIES_KEY,
    "anomaly_start",
    "kind",
    "verdict",
    "user_id",
    "user_name",
    "reason",  # text of a thread reply ("expected: nightly backfill moved"), "" for a reaction
    "channel",
    "message_ts",
    "seen_at",  # ISO UTC time Sentinel first read it (Slack does not say when a reaction came)
    "source",  # reaction | reply
]


def episode_key(service: object, account_id: object, region: object, owner: object,
                anomaly_start: object) -> str:
    """The name of an episode, stable across reruns (unowned keys as before owners existed)."""
    start = anomaly_start.isoformat() if hasattr(anomaly_start, "isoformat") else str(anomaly_start)
    parts = [start[:10], str(service), str(account_id), str(region)]
    if isinstance(owner, str) and owner:
        parts.append(owner)
    return "|".join(parts)


ALERT_EXTRA_COLUMNS: list[str] = [
    "explanation",
    "likely_cause",
    "where_to_look",
    "action",  # stop | review | accept
    "confidence",  # 0..1 from the model; NaN for the deterministic fallback
    "annotator",
]

ALERT_COLUMNS: list[str] = ANOMALY_COLUMNS + ALERT_EXTRA_COLUMNS

_STRING_COLUMNS = {
    "owner_key",
    "episode_id",
    "alert_key",
    "status",
    "verdict",
    "verdict_by",
    "user_id",
    "user_name",
    "reason",
    "channel",
    "message_ts",
    "seen_at",
    "service",
    "account_id",
    "region",
    "owner",
    "currency",
    "source",
    "method",
    "kind",
    "explanation",
    "likely_cause",
    "where_to_look",
    "action",
    "annotator",
    "root_causes",
}
_FLOAT_COLUMNS = {
    "cost",
    "expected_cost",
    "lower",
    "upper",
    "scale",
    "actual_cost",
    "impact",
    "pct_change",
    "score",
    "log_scale",
    "noise_df",
    "prior_actual",
    "prior_expected",
    "cusum",
    "cusum_large",
    "autocorr",
    "monthly_cost",
    "early_cost",
    "confidence",
    "impact_to_date",
    "episode_peak",
}


_DATE_COLUMNS = {"usage_date", "anomaly_start", "alert_day", "resolved_on"}
_BOOL_COLUMNS = {"estimated", "alert"}
_INT_COLUMNS = {"history_days", "elevated_days", "episode_days_left_out", "days", "unusual_days"}


def _as_dates(column: pd.Series) -> pd.Series:
    """datetime.date values (Parquet date32), converting only when they are something else."""
    if column.dtype == object and len(column):
        first = column.iloc[0]
        if isinstance(first, date) and not isinstance(first, datetime):
            return column
    return pd.to_datetime(column).dt.date


_EMPTY: dict[tuple[str, ...], pd.DataFrame] = {}


def empty_frame(columns: list[str]) -> pd.DataFrame:
    """An empty table with the contract's dtypes, so empty days still write a valid Parquet file."""
    key = tuple(columns)
    if key not in _EMPTY:
        _EMPTY[key] = conform(pd.DataFrame({c: [] for c in columns}), columns)
    return _EMPTY[key].copy()


_STRING = pd.StringDtype()


def conform(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Order and type the contract columns (extra columns are kept after them).

    Stable dtypes make every partition file of a table share one Parquet schema, so the table
    reads as one dataset in pyarrow, DuckDB or Athena. Columns already of the right type are
    left alone: this runs once per written day.
    """
    out = df.copy()
    for col in columns:
        if col not in out.columns:
            out[col] = "" if col == "owner" else pd.NA
    for col in out.columns:
        dtype = out[col].dtype
        if col in _DATE_COLUMNS:
            out[col] = _as_dates(out[col])
        elif col in _FLOAT_COLUMNS:
            if dtype != "float64":
                out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
        elif col in _STRING_COLUMNS:
            if dtype != _STRING:
                out[col] = out[col].astype(_STRING)
        elif col in _BOOL_COLUMNS:
            if dtype != "bool":
                out[col] = out[col].fillna(False).astype(bool)
        elif col in _INT_COLUMNS:
            if dtype != "int64":
                out[col] = pd.to_numeric(out[col]).fillna(0).astype("int64")
    extra = [c for c in out.columns if c not in columns]
    return out[columns + extra].reset_index(drop=True)


def with_owner(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows written or built before series had an owner are unowned (""); other frames as is."""
    if "region" in frame.columns and "owner" not in frame.columns:
        frame = frame.copy()
        at = list(frame.columns).index("region") + 1
        frame.insert(at, "owner", pd.Series([""] * len(frame), index=frame.index, dtype=_STRING))
    return frame


def same_series(frame: pd.DataFrame, row: pd.Series) -> pd.Series:
    """Boolean mask of the rows of ``frame`` that belong to ``row``'s series."""
    frame = with_owner(frame)
    mask = pd.Series(True, index=frame.index)
    for column in SERIES_KEY:
        mask &= frame[column].astype(str) == str(row.get(column, "") if column == "owner"
                                                 else row[column])
    return mask


def arrow_type(column: str) -> pa.DataType | None:
    """The Parquet type of a contract column, for when pandas cannot tell (an empty day's dates
    would otherwise be written as type null, and the table would not share one schema)."""
    if column in _DATE_COLUMNS:
        return pa.date32()
    if column in _FLOAT_COLUMNS:
        return pa.float64()
    if column in _STRING_COLUMNS:
        return pa.string()
    if column in _BOOL_COLUMNS:
        return pa.bool_()
    if column in _INT_COLUMNS:
        return pa.int64()
    return None
