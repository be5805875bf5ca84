"""Every check on Sentinel's tables, in one place, grouped by table.

Two kinds, both here:
- ``validate_raw_costs`` runs before anything is written: bad source rows stop the run with a
  message naming the fix, and no file is written.
- Asset checks run on what each asset just wrote and show next to the data in the UI. Their
  rules are plain functions over the day frames (returning ``(passed, metadata)``), so they are
  tested without Dagster; the ``*_check_results`` functions turn them into check results.

Blocking checks stop the run before anything downstream (and Slack) sees bad rows; the others
warn. The freshness check (is yesterday there by 10:00 UTC) is evaluated by its own sensor.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from sentinel_pipeline.annotation.prompt import ACTIONS
from sentinel_pipeline.errors import SourceError
from sentinel_pipeline.schema import ANOMALY_KINDS, RAW_COLUMNS, SERIES_KEY, arrow_type, conform
from sentinel_pipeline.storage import TableStore

RAW = "raw_daily_costs"
Rule = tuple[bool, dict[str, Any]]

# Columns a cost row cannot be used without: a missing one hides money or a series from Slack.
RAW_REQUIRED = ["usage_date", "service", "account_id", "region", "cost", "currency"]
SHRINK_RATIO = 0.5  # a day under half the day before usually means missing accounts or services
MIN_COVERAGE = 0.5  # share of series with a week of history below which baselines are guesses


def series_label(key: tuple[object, ...]) -> str:
    """A series key as people read it, "EC2 / 111 / us-east-1 / team-a"; an empty (unowned or
    untagged) owner is left out, as before series had owners."""
    return " / ".join(str(v) for i, v in enumerate(key)
                      if not (SERIES_KEY[i] == "owner" and v in ("", None)))


# ------------------------------------------------------------ raw_daily_costs, before writing
def validate_raw_costs(rows: pd.DataFrame, days: list[date]) -> pd.DataFrame:
    """Contract columns present, no NaN or infinite cost, one currency per series, dates inside
    the run."""
    missing = [c for c in RAW_COLUMNS if c not in rows.columns]
    if missing:
        raise SourceError(
            f"The cost source returned no column(s) {', '.join(missing)}; every source must "
            f"return {', '.join(RAW_COLUMNS)}."
        )
    rows = conform(rows, RAW_COLUMNS)
    if len(rows) == 0:
        return rows
    bad_cost = rows["cost"].isna()
    if bad_cost.any():
        first = rows[bad_cost].iloc[0]
        raise SourceError(
            f"{int(bad_cost.sum())} cost row(s) have no numeric cost, e.g. {first['service']} / "
            f"{first['account_id']} / {first['region']} on {first['usage_date']}: fix the "
            "source data or exclude those rows."
        )
    infinite = ~np.isfinite(rows["cost"].to_numpy(dtype=float))
    if infinite.any():
        first = rows[infinite].iloc[0]
        raise SourceError(
            f"{int(infinite.sum())} series-day(s) sum to a cost too large to store "
            f"({first['cost']}), e.g. {first['service']} / {first['account_id']} / "
            f"{first['region']} on {first['usage_date']} (source {first['source']}): the export "
            "holds absurd amounts (1e308 and the like) for that day; fix or remove those line "
            "items and rerun the day. Nothing was written."
        )
    outside = ~rows["usage_date"].isin(set(days))
    if outside.any():
        raise SourceError(
            f"The cost source returned rows for {rows.loc[outside, 'usage_date'].iloc[0]}, "
            f"outside the requested days {days[0]}..{days[-1]}."
        )
    currencies = rows.groupby(SERIES_KEY, dropna=False)["currency"].nunique()
    mixed = currencies[currencies > 1]
    if len(mixed):
        key = mixed.index[0]
        found = sorted(rows.set_index(SERIES_KEY).loc[key, "currency"].astype(str).unique())
        raise SourceError(
            f"Series {series_label(key)} has costs in {', '.join(found)}: "
            "export one billing currency, or convert before loading."
        )
    return rows


# ------------------------------------------------------------ raw_daily_costs, asset checks
def _parquet_types(column: str) -> tuple[pa.DataType, ...]:
    """The Arrow types a written contract column may have (text may come as large_string)."""
    wanted = arrow_type(column)
    assert wanted is not None, f"{column} has no type in schema.py"
    return (wanted, pa.large_string()) if wanted == pa.string() else (wanted,)


# The raw_daily_costs file schema of DESIGN.md, as Parquet (Arrow) types: what DuckDB, Athena
# and pyarrow see when they read the table as one dataset.
RAW_ARROW_TYPES: dict[str, tuple[pa.DataType, ...]] = {col: _parquet_types(col)
                                                       for col in RAW_COLUMNS}

RAW_CHECK_SPECS = [
    dg.AssetCheckSpec(
        "days_complete", asset=RAW,
        description="Every day has costs and none is under half the day before "
        "(missing accounts or services, or an export not yet delivered)."),
    dg.AssetCheckSpec(
        "no_missing_values", asset=RAW, blocking=True,
        description="No NaN cost and no empty date, service, account, region or currency. "
        "Blocking: a NaN sums to nothing and would hide spend from the anomalies."),
    dg.AssetCheckSpec(
        "one_currency_per_series", asset=RAW, blocking=True,
        description="Each (service, account, region) is billed in one currency. Blocking: "
        "baselines mixing EUR and USD would alert on exchange rates."),
    dg.AssetCheckSpec(
        "schema_matches", asset=RAW, blocking=True,
        description="The written Parquet files have the DESIGN.md columns in order with their "
        "types (date32, strings, float64 cost, bool estimated). Blocking: downstream assets "
        "and SQL readers rely on them."),
]


def raw_days_complete(frames: Mapping[date, pd.DataFrame], day_before_total: float | None) -> Rule:
    """Every day has costs, and no day's total is under half the previous day's."""
    empty, shrunk = [], []
    previous = day_before_total
    for day in sorted(frames):
        rows = frames[day]
        # numeric: a check must report on drifted rows (text costs), not crash on them
        total = float(pd.to_numeric(rows["cost"], errors="coerce").sum()) if len(rows) else 0.0
        if len(rows) == 0:
            empty.append(str(day))
        elif previous and previous > 0 and total < SHRINK_RATIO * previous:
            shrunk.append(f"{day} ({total:,.2f} vs {previous:,.2f})")
        previous = total
    return not empty and not shrunk, {
        "days_without_costs": ", ".join(empty) or "none",
        "days_under_half_the_day_before": ", ".join(shrunk) or "none",
    }


def raw_no_missing_values(frames: Mapping[date, pd.DataFrame]) -> Rule:
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


def raw_one_currency_per_series(frames: Mapping[date, pd.DataFrame]) -> Rule:
    """Each series is billed in one currency across the run (sums of mixed currencies lie)."""
    found = [f[SERIES_KEY + ["currency"]] for f in frames.values() if len(f)]
    if not found:
        return True, {"series_with_several_currencies": 0, "currencies": "none"}
    rows = pd.concat(found, ignore_index=True)
    per_series = rows.groupby(SERIES_KEY, dropna=False)["currency"].nunique()
    mixed = per_series[per_series > 1]
    examples = [series_label(key) for key in mixed.index[:5]]
    return len(mixed) == 0, {
        "series_with_several_currencies": len(mixed),
        "examples": "; ".join(examples) or "none",
        "currencies": ", ".join(sorted(rows["currency"].dropna().astype(str).unique())) or "none",
    }


def parquet_schema_matches(
    schema: pa.Schema, expected: Mapping[str, tuple[pa.DataType, ...]]
) -> Rule:
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


def _written_schema_matches(store: TableStore, frames: Mapping[date, pd.DataFrame]) -> Rule:
    """The schema rule on the first and last file of the run, read back from storage (what
    DuckDB or Athena will see)."""
    passed, details = True, {}
    for day in sorted({min(frames), max(frames)}):
        schema = store.read_schema(RAW, day)
        if schema is None:
            return False, {"problems": f"{day}: file not found after write"}
        passed, found = parquet_schema_matches(schema, RAW_ARROW_TYPES)
        details = {**found, "file_day": str(day)}
        if not passed:
            break
    return passed, details


def raw_check_results(
    store: TableStore, frames: Mapping[date, pd.DataFrame], day_before_total: float | None
) -> list[dg.AssetCheckResult]:
    """Every raw_daily_costs check on the days just written."""
    results = {
        "days_complete": raw_days_complete(frames, day_before_total),
        "no_missing_values": raw_no_missing_values(frames),
        "one_currency_per_series": raw_one_currency_per_series(frames),
        "schema_matches": _written_schema_matches(store, frames),
    }
    return [_result(spec, *results[spec.name]) for spec in RAW_CHECK_SPECS]


# ------------------------------------------------------------ cost_baselines
BASELINE_CHECK_SPECS = [
    dg.AssetCheckSpec(
        "coverage", asset="cost_baselines",
        description="At least half the series have a week of history (else baselines guess)."),
    dg.AssetCheckSpec(
        "history_complete", asset="cost_baselines",
        description="No day of raw_daily_costs between the first and last day of history read "
        "is empty or missing: such a day is a lost day (export not delivered, failed load), not "
        "a quiet one, and drags baselines down; rerun it."),
]


def baseline_coverage(frames: Mapping[date, pd.DataFrame]) -> Rule:
    """Share of series with a week of history on the last day: low means baselines are guesses."""
    last = frames[max(frames)]
    share = float((last["history_days"] >= 7).mean()) if len(last) else 0.0
    return share >= MIN_COVERAGE, {"share_with_7_days_history": round(share, 4),
                                   "series": len(last)}


def days_with_costs(history: pd.DataFrame) -> set[date]:
    """The days a slice of raw_daily_costs has rows for."""
    if len(history) == 0:
        return set()
    return set(pd.to_datetime(history["usage_date"]).dt.date)


def history_gaps(have: set[date]) -> list[date]:
    """Days without a cost row between the first and the last of ``have``."""
    if not have:
        return []
    first, last = min(have), max(have)
    return [d for d in (first + timedelta(days=i) for i in range((last - first).days))
            if d not in have]


def history_complete(gaps: list[date]) -> Rule:
    return not gaps, {"empty_history_days": len(gaps),
                      "days": ", ".join(str(d) for d in gaps[:20]) or "none"}


def baseline_check_results(
    frames: Mapping[date, pd.DataFrame], gaps: list[date]
) -> list[dg.AssetCheckResult]:
    coverage, complete = BASELINE_CHECK_SPECS
    return [_result(coverage, *baseline_coverage(frames)),
            _result(complete, *history_complete(gaps))]


# ------------------------------------------------------------ cost_anomalies
ANOMALY_CHECK_SPECS = [dg.AssetCheckSpec(
    "consistent", asset="cost_anomalies", blocking=True,
    description="impact = actual - expected, known kinds, finite scores, episodes start "
    "on or before their day. Blocking: alerts are not built from inconsistent rows.")]


def anomalies_consistent(frames: Mapping[date, pd.DataFrame]) -> Rule:
    """Rows agree with themselves: impact = actual - expected, known kinds, finite scores,
    episodes that start on or before their day."""
    problems: list[str] = []
    kinds = set(ANOMALY_KINDS)
    for day, rows in sorted(frames.items()):
        if len(rows) == 0:
            continue
        impact = rows["actual_cost"] - rows["expected_cost"]
        if not np.allclose(rows["impact"], impact, rtol=1e-9, atol=1e-6):
            problems.append(f"{day}: impact != actual - expected")
        if not set(rows["kind"]) <= kinds:
            problems.append(f"{day}: unknown kind {sorted(set(rows['kind']) - kinds)}")
        if not np.isfinite(rows["score"].to_numpy(dtype=float)).all():
            problems.append(f"{day}: score is not finite")
        starts = pd.to_datetime(rows["anomaly_start"]).dt.date
        if (starts > pd.to_datetime(rows["usage_date"]).dt.date).any():
            problems.append(f"{day}: anomaly_start after usage_date")
    return not problems, {"problems": "; ".join(problems[:10]) or "none"}


def anomaly_check_results(frames: Mapping[date, pd.DataFrame]) -> list[dg.AssetCheckResult]:
    return [_result(ANOMALY_CHECK_SPECS[0], *anomalies_consistent(frames))]


# ------------------------------------------------------------ cost_scores
SCORE_CHECK_SPECS = [dg.AssetCheckSpec(
    "every_series_scored", asset="cost_scores",
    description="Each day has one row per series and no infinite score; series the method "
    "could not score yet (seed: under 8 days of history) are counted as unscored (warns: a "
    "duplicate or an infinite score means the table cannot be ranked).")]


def score_problems(frames: Mapping[date, pd.DataFrame]) -> tuple[list[str], int]:
    """What scores_complete finds in ``frames``: its problems, and the NaN scores counted."""
    problems: list[str] = []
    unscored = 0
    for day, rows in sorted(frames.items()):
        if len(rows) == 0:
            continue
        if rows.duplicated([k for k in SERIES_KEY if k in rows.columns]).any():
            problems.append(f"{day}: a series scored twice")
        score = rows["score"].to_numpy(dtype=float)
        if np.isinf(score).any():
            problems.append(f"{day}: {int(np.isinf(score).sum())} infinite scores")
        unscored += int(np.isnan(score).sum())
    return problems, unscored


def _scores_rule(problems: list[str], unscored: int) -> Rule:
    return not problems, {"problems": "; ".join(problems[:10]) or "none",
                          "unscored_series_days": unscored}


def scores_complete(frames: Mapping[date, pd.DataFrame]) -> Rule:
    """One row per series a day, no infinite score; NaN (not scorable yet) is counted."""
    return _scores_rule(*score_problems(frames))


def score_check_results(found: Sequence[tuple[list[str], int]]) -> list[dg.AssetCheckResult]:
    """scores_complete over a range scored in blocks: each block's score_problems, added up."""
    return [_result(SCORE_CHECK_SPECS[0], *_scores_rule(
        [p for problems, _ in found for p in problems], sum(n for _, n in found)))]


# ------------------------------------------------------------ annotated_alerts
ALERT_CHECK_SPECS = [dg.AssetCheckSpec(
    "explained", asset="annotated_alerts",
    description="Every alert has a non-empty explanation and an action among "
    f"{', '.join(ACTIONS)} (warns: the Slack message would say nothing useful).")]


def alerts_explained(frames: Mapping[date, pd.DataFrame], actions: Sequence[str]) -> Rule:
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


def alert_check_results(frames: Mapping[date, pd.DataFrame]) -> list[dg.AssetCheckResult]:
    return [_result(ALERT_CHECK_SPECS[0], *alerts_explained(frames, ACTIONS))]


def _result(spec: dg.AssetCheckSpec, passed: bool, details: dict[str, Any]) -> dg.AssetCheckResult:
    """A blocking spec fails with ERROR (and stops the run); the others warn."""
    return dg.AssetCheckResult(
        check_name=spec.name, passed=passed, metadata=details,
        severity=dg.AssetCheckSeverity.ERROR if spec.blocking else dg.AssetCheckSeverity.WARN)


# ------------------------------------------------------------ freshness of raw_daily_costs
# Yesterday's partition must exist by 10:00 UTC. The 09:00 schedule normally lands it within
# minutes; at 10:00 a missing partition means the schedule did not run, the run failed, or the
# source had no data yet. A sensor evaluates the check, because nothing else runs it when
# nothing else runs (sensors.py).
#
# Why the time-partition check and not `dg.FreshnessPolicy`: dagster 1.13 marks
# `build_time_partition_freshness_checks` as superseded by FreshnessPolicy, but a policy judges
# *when the asset last materialised*, so a backfill of old days at 09:30 would pass it even with
# yesterday missing. The check asks exactly our question: is partition D-1 there.
RAW_FRESHNESS_DEADLINE_CRON = "0 10 * * *"
RAW_FRESHNESS_CHECK = dg.AssetCheckKey(dg.AssetKey(RAW), "freshness_check")

with warnings.catch_warnings():
    # SupersessionWarning at import: see above for why we keep this check.
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    raw_freshness_checks = dg.build_time_partition_freshness_checks(
        assets=[RAW],
        deadline_cron=RAW_FRESHNESS_DEADLINE_CRON,
        timezone="UTC",
        severity=dg.AssetCheckSeverity.ERROR,
    )


# ------------------------------------------------------------ anomaly_episodes
EPISODE_CHECK_SPECS = [dg.AssetCheckSpec(
    "alerts_followed", asset="anomaly_episodes",
    description="Every alerted rise (alert=True, an up kind) of cost_anomalies[D] is an episode "
    "row of anomaly_episodes[D], and no episode is listed twice a day (warns: its Slack "
    "follow-ups would be missing or doubled).")]


def episodes_follow_alerts(anomalies: Mapping[date, pd.DataFrame | None],
                           episodes: Mapping[date, pd.DataFrame]) -> Rule:
    """Each day's alerted rises have an episode row; an episode appears once a day."""
    from sentinel_pipeline.detection.episodes import unepisoded_alerts  # noqa: PLC0415

    problems: list[str] = []
    missing = 0
    for day, rows in sorted(episodes.items()):
        lost = unepisoded_alerts(anomalies.get(day), rows)
        missing += len(lost)
        if lost:
            problems.append(f"{day}: {len(lost)} alert(s) without episode ({lost[0]})")
        if len(rows) and rows["episode_id"].duplicated().any():
            problems.append(f"{day}: an episode listed twice")
    return not problems, {"problems": "; ".join(problems[:10]) or "none",
                          "alerts_without_episode": missing}


def episode_check_results(anomalies: Mapping[date, pd.DataFrame | None],
                          episodes: Mapping[date, pd.DataFrame]) -> list[dg.AssetCheckResult]:
    return [_result(EPISODE_CHECK_SPECS[0], *episodes_follow_alerts(anomalies, episodes))]
